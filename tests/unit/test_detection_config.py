"""The detection configuration: defaults from the contract, overrides, and refusals that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopgate.detector.config import ConfigError, load_detection_config


def test_the_packaged_defaults_are_the_contracts() -> None:
    cfg = load_detection_config()
    t = cfg.thresholds
    assert (t.bid_jump_max_ratio, t.bid_jump_min_ratio, t.pacing_max_ratio) == (2.0, 0.5, 1.3)
    assert (t.brand_safety_min, t.brand_voice_min) == (0.7, 0.6)
    assert cfg.caption_limits == {"x": 280, "instagram": 2200, "tiktok": 2200, "linkedin": 3000, "facebook": 63206}
    assert (cfg.sampling.bids, cfg.sampling.trafficking, cfg.sampling.content) == (0.01, 0.02, 0.05)
    assert cfg.severity_of("overspend") == "critical" and cfg.severity_of("audit_sample") == "info"


def test_client_overrides_win_over_platform_overrides_which_win_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(
        "[platforms.meta]\nbid_jump_max_ratio = 1.5\nbrand_safety_min = 0.8\n"
        "[clients.contoso]\nbrand_safety_min = 0.9\n"
    )
    cfg = load_detection_config(path)
    assert cfg.thresholds_for("contoso", "meta").brand_safety_min == 0.9
    assert cfg.thresholds_for("contoso", "meta").bid_jump_max_ratio == 1.5
    assert cfg.thresholds_for("northwind", "meta").brand_safety_min == 0.8
    assert cfg.thresholds_for("northwind", "ttd").brand_safety_min == 0.7


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[thresholds]\nbid_jump_max_ratoi = 2.0\n", "thresholds.bid_jump_max_ratoi: Extra inputs are not permitted"),
        ("[thresholds]\nbrand_safety_min = 'high'\n", "thresholds.brand_safety_min: Input should be a valid number"),
        ("[clients.acme]\nbrand_safety_min = 3\n", "clients.acme.brand_safety_min: Input should be less than"),
        ("[sampling]\n'trafficking.events' = -0.1\n", "sampling.trafficking.events: Input should be greater"),
        ("[severity]\noverspend = 'urgent'\n", "severity.overspend: Input should be"),
        ("[thresholds\n", "Expected ']'"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_detection_config(path)
    assert named in str(caught.value)
    assert str(path) in str(caught.value)
