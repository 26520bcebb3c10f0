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
        ("[anomaly]\ntrend_alpha = -0.001\n", "anomaly.trend_alpha: Input should be greater than or equal to 0"),
        ("[anomaly]\ntrend_alpha = 1.0\n", "anomaly.trend_alpha: Input should be less than 1"),
        ("[anomaly]\ntrend_alpha = 'fast'\n", "anomaly.trend_alpha: Input should be a valid number"),
        ("[anomaly]\ntrend_alpha = nan\n", "anomaly.trend_alpha: Input should be"),
        ("[anomaly]\ntrend_alpah = 0.01\n", "anomaly.trend_alpah: Extra inputs are not permitted"),
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


def test_following_the_verdicts_is_off_by_default_with_bounded_parameters() -> None:
    s = load_detection_config().sampling
    assert s.adaptive is False
    assert (s.cap, s.weight, s.tolerance, s.saturation, s.model_labels) == (0.25, 0.1, 0.05, 0.5, 20)


def test_following_the_verdicts_can_be_turned_on(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("[sampling]\nadaptive = true\ncap = 0.4\nweight = 0.2\ntolerance = 0.1\nsaturation = 0.6\n")
    s = load_detection_config(path).sampling
    assert (s.adaptive, s.cap, s.weight, s.tolerance, s.saturation) == (True, 0.4, 0.2, 0.1, 0.6)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("adaptive = 'yes'", "sampling.adaptive: Input should be a valid boolean"),
        ("adaptive = 1", "sampling.adaptive: Input should be a valid boolean"),
        ("cap = 1.5", "sampling.cap: Input should be less than or equal to 1"),
        ("cap = -0.1", "sampling.cap: Input should be greater than or equal to 0"),
        ("cap = nan", "sampling.cap: Input should be"),
        ("cap = inf", "sampling.cap: Input should be"),
        ("cap = 'high'", "sampling.cap: Input should be a valid number"),
        ("weight = 0", "sampling.weight: Input should be greater than 0"),
        ("weight = 2", "sampling.weight: Input should be less than or equal to 1"),
        ("weight = nan", "sampling.weight: Input should be"),
        ("tolerance = -1", "sampling.tolerance: Input should be greater than or equal to 0"),
        ("saturation = 1e400", "sampling.saturation: Input should be"),
        ("model_labels = -1", "sampling.model_labels: Input should be greater than or equal to 0"),
        ("model_labels = 100000", "sampling.model_labels: Input should be less than or equal to 200"),
        ("model_labels = 2.5", "sampling.model_labels: Input should be a valid integer"),
        ("tolerance = 0.5\nsaturation = 0.5", "sampling: saturation (0.5) must be above tolerance (0.5)"),
        ("adaptive = true\ncap = 0.03", "sampling: cap (0.03) is below a source's base rate (0.05)"),
        ("adaptiv = true", "sampling.adaptiv: Extra inputs are not permitted"),
    ],
)
def test_a_bad_adaptive_sampling_key_is_refused_with_the_key_named(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[sampling]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_detection_config(path)
    assert named in str(caught.value)
