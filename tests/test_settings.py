"""Settings: every one documented in the README, the environment over the .env file, typed values."""

from __future__ import annotations

from pathlib import Path

from llm_wrapper.settings import Settings, load_settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    missing = [
        name.upper()
        for name in Settings.model_fields
        if name != "environ" and f"`{name.upper()}`" not in README
    ]
    assert missing == []


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("SERVER_PORT=9001\nMONITOR_TTL_HOURS=2\nOPENAI_API_KEY=from-file\n")
    settings = load_settings({"LLM_WRAPPER_ENV_FILE": str(env_file), "SERVER_PORT": "9100"})
    assert settings.server_port == 9100
    assert settings.monitor_ttl_hours == 2
    assert settings.secret("OPENAI_API_KEY") == "from-file"


def test_missing_env_file_is_fine_and_defaults_apply(tmp_path):
    settings = load_settings({"LLM_WRAPPER_ENV_FILE": str(tmp_path / "absent.env")})
    assert settings.server_port == 8080
    assert settings.database_url.startswith("sqlite:///")
    assert settings.monitor_ttl_hours == 24 and settings.monitor_sweep_seconds == 3600
    assert settings.parallel_base_url == "https://api.parallel.ai"


def test_parallel_key_accepts_both_names(tmp_path):
    absent = str(tmp_path / "absent.env")
    assert load_settings({"LLM_WRAPPER_ENV_FILE": absent, "PARALLEL_API_KEY": "b"}).parallel_key == "b"
    both = load_settings({"LLM_WRAPPER_ENV_FILE": absent, "PARALLEL_API_KEY": "b", "PARALLELAI_API_KEY": "a"})
    assert both.parallel_key == "a"
    assert both.secret("PARALLELAI_API_KEY") == "a"
    assert load_settings({"LLM_WRAPPER_ENV_FILE": absent, "PARALLEL_API_KEY": "b"}).secret("PARALLELAI_API_KEY") == "b"


def test_secrets_are_not_shown_in_repr(tmp_path):
    settings = load_settings(
        {"LLM_WRAPPER_ENV_FILE": str(tmp_path / "x"), "PARALLELAI_API_KEY": "sekrit-value", "OPENAI_API_KEY": "sk-hidden"}
    )
    assert "sekrit-value" not in repr(settings)
    assert "sk-hidden" not in repr(settings)
