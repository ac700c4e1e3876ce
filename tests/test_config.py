import pytest

from jtm.config import ConfigError, ResampleConfig, load_params, section, validate_params
from tests.conftest import REPO


def test_overrides_parse_yaml_values():
    params = load_params(
        REPO / "params.yaml", ["resample.quality=HQ", "resample.workers=3", "demo.soundfont=null"]
    )
    cfg = section(params, "resample", ResampleConfig)
    assert cfg.quality == "HQ" and cfg.workers == 3
    assert params["demo"]["soundfont"] is None


@pytest.mark.parametrize("override", ["resample.qualty=HQ", "nosuch.key=1", "resample", "=3"])
def test_bad_override_is_an_error(override):
    with pytest.raises(ConfigError):
        load_params(REPO / "params.yaml", [override])


def test_section_rejects_unknown_and_missing_keys():
    params = load_params(REPO / "params.yaml")
    params["resample"]["extra"] = 1
    with pytest.raises(ConfigError, match="unknown keys \\['extra'\\]"):
        section(params, "resample", ResampleConfig)
    del params["resample"]["extra"], params["resample"]["dtype"]
    with pytest.raises(ConfigError, match="missing keys \\['dtype'\\]"):
        section(params, "resample", ResampleConfig)


def test_unreadable_params_file_names_it(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match=str(bad)):
        load_params(bad)


def test_validate_params_catches_a_typo_in_any_section():
    params = load_params(REPO / "params.yaml")
    validate_params(params)
    params["index"]["hopp"] = params["index"].pop("hop")
    with pytest.raises(ConfigError, match="'index'.*unknown keys \\['hopp'\\].*missing keys \\['hop'\\]"):
        validate_params(params)
