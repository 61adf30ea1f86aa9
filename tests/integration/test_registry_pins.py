"""Vacuum's pin list: every registered model version's pins, past the first page of models and whatever the
model's name holds."""

from __future__ import annotations

from fti.store import Pin


def test_pins_of_every_model_past_the_first_page_and_with_a_quote(tmp_path):
    from fti.config import load_config
    from fti.registry import client, pins

    settings = load_config("synthetic", home=tmp_path / "home", env={})
    (tmp_path / "home" / "mlflow").mkdir(parents=True)
    registry = client(settings)
    for i in range(105):  # more than one page of registered models (MLflow's default page: 100)
        registry.create_registered_model(f"model_{i:03d}")
    name = "zz_o'brien"  # sorts last, and a quote broke the name filter
    registry.create_registered_model(name)
    registry.create_model_version(name, source=(tmp_path / "artifacts").as_uri(),
                                  tags={"fti.pin.synthetic/activity": "3", "fti.pin.synthetic/labels": "5"})
    registry.create_model_version("model_104", source=(tmp_path / "artifacts").as_uri(),
                                  tags={"fti.pin.synthetic/canary": "2"})
    assert sorted(pins(settings), key=lambda p: p.table) == [
        Pin("synthetic/activity", 3, "zz_o'brien/1"), Pin("synthetic/canary", 2, "model_104/1"),
        Pin("synthetic/labels", 5, "zz_o'brien/1")]
