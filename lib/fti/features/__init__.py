"""The feature pipeline: what a project declares (definitions, spec), the run (plan and executor), the quarantine,
DataFrame inserts and sources read in place. A project imports :mod:`fti.authoring`, not these modules."""
