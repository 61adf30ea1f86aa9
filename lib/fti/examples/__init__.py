"""Example projects shipped with fti, written with :mod:`fti.authoring` only; ``fti init DIR --example NAME`` copies
one out as a starter."""
