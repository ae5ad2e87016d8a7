"""Config validation: each rule, good and bad, and the `trailpipe validate` command."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config, parse_config, parse_recurrence

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def good_source(**overrides) -> dict:
    source = {
        "identifier": "prod-trail",
        "bucket": "my-cloudtrail-bucket",
        "region": "eu-west-1",
        "signature_version": "v4",
        "auth": {"method": "access_key", "access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET},
        "directory_prefix": "AWSLogs/123456789012/CloudTrail/eu-west-1/",
        "file_pattern": r".*?\.json\.gz",
        "event_format": "cloudtrail_json",
        "recurrence": "15 M",
    }
    source.update(overrides)
    return source


def problems_of(*sources: dict, **settings) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"redis_url": "redis://127.0.0.1:1/0", "sources": list(sources), **settings})
    return info.value.problems


def test_good_config_with_defaults():
    config = parse_config({"sources": [good_source()]})
    source = config.sources[0]
    assert source.endpoint_url == "https://s3.amazonaws.com"
    assert source.eps_throttle == 5000
    assert source.recurrence.total_seconds() == 900
    assert config.stream == "trailpipe:events"
    assert config.redis_url is None
    assert source.queue_name == "trailpipe.eu-west-1"


def test_broker_url_defaults_to_redis_url(monkeypatch):
    monkeypatch.delenv("TRAILPIPE_REDIS_URL", raising=False)
    config = parse_config({"redis_url": "redis://h:1/2", "sources": [good_source()]})
    assert config.broker_url_value() == "redis://h:1/2"
    config = parse_config({"redis_url": "redis://h:1/2", "broker_url": "redis://b:1/3", "sources": [good_source()]})
    assert config.broker_url_value() == "redis://b:1/3"


@pytest.mark.parametrize("text,seconds", [
    ("2H", 7200), ("15 M", 900), ("1D", 86400), ("1M", 60), (" 3 h ", 10800), ("90m", 5400),
])
def test_recurrence_parsing(text, seconds):
    assert parse_recurrence(text) == seconds


@pytest.mark.parametrize("text", ["0M", "30S", "H", "2", "1.5H", "2 HOURS", "-1M", ""])
def test_recurrence_rejected(text):
    with pytest.raises(ValueError):
        parse_recurrence(text)


@pytest.mark.parametrize("overrides,field,words", [
    ({"directory_prefix": "/AWSLogs/"}, "directory_prefix", 'must not start with "/"'),
    ({"recurrence": "30S"}, "recurrence", "not a recurrence"),
    ({"recurrence": "0M"}, "recurrence", "minimum of 1 minute"),
    ({"region": None}, "region", "required with signature_version v4"),
    ({"file_pattern": "(.*\\.json"}, "file_pattern", "not a valid regular expression"),
    ({"eps_throttle": 0}, "eps_throttle", "must be at least 1"),
    ({"signature_version": "v3"}, "signature_version", "'v2' or 'v4'"),
    ({"event_format": "leef"}, "event_format", "cloudtrail_json"),
    ({"endpoint_url": "s3.amazonaws.com"}, "endpoint_url", "not an http(s) URL"),
    ({"bucket": "Bad_Bucket"}, "bucket", "is not an S3 bucket name: 3 to 63 lower-case letters"),
    ({"region": "Europe"}, "region", "is not an AWS region name such as"),
    ({"auth": {"method": "password"}}, "auth", "method"),
    ({"auth": {"method": "access_key", "access_key_id": "AKIA"}}, "auth.secret_access_key", "is required"),
    ({"proxy": {"host": "proxy.local", "port": 70000}}, "proxy.port", "must be at most 65535"),
    ({"auto_acquire_certificates": True}, "trusted_certificates_dir", "required with auto_acquire"),
    ({"trusted_certificates_dir": "/no/such/dir"}, "trusted_certificates_dir", "not a directory"),
    ({"output_formats": ["cef"]}, "output_formats.0", "'ecs' or 'ocsf'"),
    ({"bucket_name": "x"}, "bucket_name", "is not a known parameter (did you mean 'bucket'?)"),
    ({"recurence": "1H"}, "recurence", "is not a known parameter (did you mean 'recurrence'?)"),
    ({"auth": {"method": "access_key", "access_key_id": "A", "secret_acces_key": "s" * 20}},
     "auth.secret_acces_key", "(did you mean 'secret_access_key'?)"),
    ({"sqs": {"region": "us-east-1"}}, "sqs.queue_url", "is required"),
    ({"sqs": {"queue_url": "sqs.us-east-1.amazonaws.com/1/q"}}, "sqs.queue_url", "not an http(s) URL"),
    ({"sqs": {"queue_url": "https://q", "endpoint_url": "localhost"}}, "sqs.endpoint_url", "not an http(s) URL"),
    ({"sqs": {"queue_url": "https://q", "auth": {"method": "access_key", "access_key_id": "A"}}},
     "sqs.auth.secret_access_key", "is required"),
    ({"sqs": {"queue_url": "https://q", "visibility": 30}}, "sqs.visibility", "not a known parameter"),
    ({"sqs": {"queue_url": "https://q", "regoin": "us-east-1"}}, "sqs.regoin", "(did you mean 'region'?)"),
])
def test_each_bad_parameter_is_named(overrides, field, words):
    problems = problems_of(good_source(**overrides))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"source 'prod-trail' field '{field}':"), problems
    assert words in problems[0], problems


def test_sqs_defaults_from_the_source():
    from pipeline.s3 import sqs_view
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/trail-events"
    config = parse_config({"sources": [good_source(sqs={"queue_url": queue})]})
    source = config.sources[0]
    assert source.sqs.queue_url == queue and source.sqs.region is None and source.sqs.auth is None
    view = sqs_view(source)
    assert view.region == "eu-west-1" and view.auth == source.auth
    assert view.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    other = {"method": "instance_role"}
    source = parse_config({"sources": [good_source(sqs={"queue_url": queue, "region": "us-east-2", "auth": other,
                                                        "endpoint_url": "http://127.0.0.1:9324"})]}).sources[0]
    view = sqs_view(source)
    assert view.region == "us-east-2" and view.auth.method == "instance_role"
    assert view.endpoint_url == "http://127.0.0.1:9324" and source.auth.method == "access_key"


def test_sqs_needs_a_region_from_somewhere():
    queue = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}
    (problem,) = problems_of(good_source(signature_version="v2", region=None, sqs=queue))
    assert problem.startswith("source 'prod-trail' field 'sqs.region': is required when the source has no region")
    config = parse_config({"sources": [good_source(signature_version="v2", region=None,
                                                   sqs={**queue, "region": "eu-west-1"})]})
    assert config.sources[0].sqs.region == "eu-west-1"


def test_v2_does_not_need_a_region():
    config = parse_config({"sources": [good_source(signature_version="v2", region=None)]})
    assert config.sources[0].region is None


def test_root_prefix_and_relative_prefix():
    config = parse_config({"sources": [good_source(directory_prefix="/"), good_source(identifier="b", directory_prefix="AWSLogs/")]})
    assert config.sources[0].list_prefix == ""
    assert config.sources[1].list_prefix == "AWSLogs/"


def test_identifiers_unique_and_every_problem_reported():
    problems = problems_of(good_source(), good_source(recurrence="10S"), good_source(identifier="x", eps_throttle=-5))
    assert any("'prod-trail' field 'identifier': is used by more than one source" in p for p in problems)
    assert any("'prod-trail' field 'recurrence'" in p for p in problems)
    assert any("'x' field 'eps_throttle'" in p for p in problems)


def test_source_without_identifier_is_named_by_position():
    source = good_source()
    del source["identifier"]
    problems = problems_of(source)
    assert problems == ["source #1 (no identifier) field 'identifier': is required"]


def test_env_substitution(monkeypatch):
    monkeypatch.setenv("TP_TEST_SECRET", SECRET)
    monkeypatch.setenv("TP_TEST_BUCKET", "env-bucket")
    config = parse_config({"sources": [good_source(
        bucket="${TP_TEST_BUCKET}",
        auth={"method": "access_key", "access_key_id": "AKIA", "secret_access_key": "${TP_TEST_SECRET}"})]})
    source = config.sources[0]
    assert source.bucket == "env-bucket"
    assert source.auth.secret_access_key.get_secret_value() == SECRET
    assert SECRET not in repr(config) and SECRET not in str(source)


def test_missing_env_variable_is_a_problem(monkeypatch):
    monkeypatch.delenv("TP_TEST_UNSET", raising=False)
    problems = problems_of(good_source(auth={"method": "access_key", "access_key_id": "AKIA",
                                             "secret_access_key": "${TP_TEST_UNSET}"}))
    assert "source 'prod-trail' field 'auth.secret_access_key': environment variable TP_TEST_UNSET is not set" in problems


def test_proxy_and_instance_role():
    config = parse_config({"sources": [good_source(
        auth={"method": "instance_role"},
        proxy={"host": "proxy.corp", "port": 3128, "username": "u", "password": "p@ss:word"})]})
    source = config.sources[0]
    assert source.auth.method == "instance_role"
    assert source.proxy.password.get_secret_value() == "p@ss:word"
    assert "p@ss:word" not in repr(source)


def test_no_sources_is_an_error():
    with pytest.raises(ConfigError) as info:
        parse_config({"sources": []})
    assert "field 'sources'" in info.value.problems[0]


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"sources: [\n  secret: {SECRET}\n  : :\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "not valid YAML at line" in info.value.problems[0]
    assert SECRET not in str(info.value)


def run_validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_validate_command(tmp_path):
    import yaml

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"sources": [good_source()]}))
    result = run_validate(good)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sources": [
        good_source(recurrence="5S", directory_prefix="/x"),
        good_source(identifier="second", eps_throttle=0)]}))
    result = run_validate(bad)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "source 'prod-trail' field 'directory_prefix': must not start with \"/\" (\"/\" alone means the bucket root)",
        "source 'prod-trail' field 'recurrence': is not a recurrence: use a number and a unit H, M or D, such as 2H, 15 M or 1D",
        "source 'second' field 'eps_throttle': must be at least 1",
    ]
    assert SECRET not in result.stdout + result.stderr


def test_integrity_settings(tmp_path):
    source = parse_config({"redis_url": "redis://127.0.0.1:1/0", "sources": [good_source()]}).sources[0]
    assert not source.integrity.enabled and source.integrity.public_keys_dir is None
    on = parse_config({"redis_url": "redis://127.0.0.1:1/0", "sources": [good_source(
        integrity={"enabled": True, "public_keys_dir": str(tmp_path)})]}).sources[0]
    assert on.integrity.enabled and on.integrity.public_keys_dir == str(tmp_path)
    hidden = "/secret-place/keys"
    problems = problems_of(good_source(integrity={"enabled": True, "public_keys_dir": hidden,
                                                  "endpoint_url": "ftp://x", "colour": 1}))
    assert sorted(problems) == sorted([
        "source 'prod-trail' field 'integrity.public_keys_dir': is not a directory",
        "source 'prod-trail' field 'integrity.endpoint_url': is not an http(s) URL",
        "source 'prod-trail' field 'integrity.colour': is not a known parameter"])
    assert not any(hidden in p for p in problems)  # names source and field, never the value


# A secret pasted into the wrong field: every field's error names source and field, never the value.
MISPLACED = "wJalrXUtnFEMIK7MDENGbPxRfiCYzzSECRET"


@pytest.mark.parametrize("overrides,field", [
    ({"endpoint_url": MISPLACED}, "endpoint_url"),
    ({"region": MISPLACED}, "region"),
    ({"region": "eu-central-1", "signature_version": "v2"}, "region"),
    ({"bucket": MISPLACED}, "bucket"),
    ({"recurrence": MISPLACED}, "recurrence"),
    ({"lookback": MISPLACED}, "lookback"),
    ({"ignore_older": MISPLACED}, "ignore_older"),
    ({"signature_version": MISPLACED}, "signature_version"),
    ({"eps_throttle": MISPLACED}, "eps_throttle"),
    ({"auth": {"method": MISPLACED}}, "auth"),
    ({"auth": {"method": "assume_role", "role_arn": MISPLACED, "base": {"method": "instance_role"}}},
     "auth.role_arn"),
    ({"auth": {"method": "assume_role", "role_arn": "arn:aws:iam::123456789012:role/r",
               "sts_endpoint_url": MISPLACED, "base": {"method": "instance_role"}}}, "auth.sts_endpoint_url"),
    ({"auth": {"method": "access_key", "access_key_id": "AKIA", "secret_access_key_file": MISPLACED}},
     "auth.secret_access_key_file"),
    ({"proxy": {"host": MISPLACED + "/x", "port": 3128}}, "proxy.host"),
    ({"proxy": {"host": "proxy", "port": MISPLACED}}, "proxy.port"),
    ({"trusted_certificates_dir": MISPLACED}, "trusted_certificates_dir"),
    ({"output_formats": [MISPLACED]}, "output_formats.0"),
    ({"max_record_bytes": MISPLACED}, "max_record_bytes"),
])
def test_validate_never_echoes_a_value(overrides, field):
    problems = problems_of(good_source(**overrides))
    assert len(problems) == 1 and problems[0].startswith(f"source 'prod-trail' field '{field}': "), problems
    assert MISPLACED not in problems[0] and "eu-central-1" not in problems[0], problems


def test_validate_never_echoes_a_shared_setting():
    for settings in ({"stream": 5, "batch_size": MISPLACED}, {"state_retention": MISPLACED},
                     {"key_prefix": MISPLACED + "/"}, {"redis_url": {"x": MISPLACED}}):
        problems = problems_of(good_source(), **settings)
        assert problems and MISPLACED not in "\n".join(problems), problems


def test_durations_are_typed_once_at_load_and_defaults_come_from_one_place():
    from datetime import timedelta

    from pipeline import defaults
    from pipeline.config import format_duration
    from pipeline.ingest import IngestLimits
    from pipeline.parser import ParseLimits
    from pipeline.settings import Settings

    config = parse_config({"sources": [good_source(recurrence="90m", lookback="3 H")], "state_retention": "2D"})
    source = config.sources[0]
    assert (source.recurrence, source.lookback, config.state_retention) == (
        timedelta(minutes=90), timedelta(hours=3), timedelta(days=2))
    assert [d.total_seconds() for d in (source.recurrence, source.lookback, config.state_retention)] == [
        5400, 10800, 172800]
    assert [format_duration(d) for d in (source.recurrence, source.lookback, config.state_retention)] == ["90M", "3H", "2D"]
    default = parse_config({"sources": [{k: v for k, v in good_source().items() if k != "recurrence"}]})
    assert default.sources[0].recurrence == defaults.RECURRENCE
    assert default.state_retention == defaults.STATE_RETENTION
    assert default.requeue_after == defaults.REQUEUE_AFTER
    assert default.deadletter_maxlen == defaults.DEADLETTER_MAXLEN
    # The code paths that run without a config use the same defaults as the file.
    assert IngestLimits.default().batch_size == default.batch_size
    assert IngestLimits.default().max_attempts == default.max_attempts
    import redis

    from pipeline.store import StateStore

    store = StateStore(redis.Redis(port=1), Settings.default().keys, Settings.default().store)  # never connects
    assert store.retention_seconds == default.state_retention.total_seconds()
    assert store.requeue_after_ms == default.requeue_after.total_seconds() * 1000
    assert store.deadletter_maxlen == default.deadletter_maxlen
    assert Settings.default() == Settings.of(default)
    limits = ParseLimits.of(default.sources[0])
    assert limits == ParseLimits.default()
    assert (limits.max_uncompressed_bytes, limits.max_record_bytes, limits.max_records_per_object) == (
        defaults.MAX_UNCOMPRESSED_BYTES, defaults.MAX_RECORD_BYTES, defaults.MAX_RECORDS_PER_OBJECT)


def test_retention_must_cover_lookback_and_says_so_without_values():
    problems = problems_of(good_source(lookback="1D"), state_retention="1D")
    assert problems == ["field 'state_retention': must be at least source 'prod-trail''s lookback plus 1H"]


@pytest.mark.parametrize("identifier", [["prod", "trail"], {"name": "prod"}])
def test_an_unhashable_identifier_is_reported_not_a_crash(identifier):
    # The duplicate check once put every identifier into a set: a list crashed with TypeError.
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [good_source(identifier=identifier), good_source()]})
    assert any("field 'identifier'" in p for p in caught.value.problems), caught.value.problems


def test_messages_are_words_not_pydantic_text():
    (problem,) = problems_of(good_source(identifier="-bad"))
    assert problem.endswith("field 'identifier': may hold only letters, digits, '.', '_' and '-', and must "
                            "start with a letter or digit"), problem
    problems = problems_of(good_source(), batch_size=0, key_prefix="a b")
    assert problems == ["field 'key_prefix': may hold only letters, digits, '.', '_' and '-'",
                        "field 'batch_size': must be at least 1"], problems
    for problem in problems_of(good_source(eps_throttle="many")):
        assert "Input should" not in problem and "pattern" not in problem, problem
    # The typo is named and the missing field is said in words, with the field it was meant for.
    source = good_source()
    source["bukcet"] = source.pop("bucket")
    problems = problems_of(source)
    assert sorted(problems) == ["source 'prod-trail' field 'bucket': is required",
                                "source 'prod-trail' field 'bukcet': is not a known parameter "
                                "(did you mean 'bucket'?)"], problems
    assert problems_of(good_source(), redis_ulr="redis://h:1/0") == [
        "field 'redis_ulr': is not a known parameter (did you mean 'redis_url'?)"]


@pytest.mark.parametrize("url", ["htp://h:6379/0", "h:6379", "http://h:6379/0"])
def test_redis_url_scheme_is_checked_at_load_without_quoting_it(url, monkeypatch):
    monkeypatch.delenv("TRAILPIPE_REDIS_URL", raising=False)
    problems = problems_of(good_source(), redis_url=url.replace("h:", "user:s3cret@h:"))
    assert problems == ["field 'redis_url': is not a Redis URL: use redis://HOST:PORT/DB, rediss:// (TLS), "
                        "unix://PATH, redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB] or "
                        "redis+cluster://HOST:PORT[,HOST:PORT...]/ (rediss+... with TLS)"], problems
    assert not any("s3cret" in p for p in problems)
    assert "broker_url" in problems_of(good_source(), broker_url="htp://x")[0]
    config = parse_config({"redis_url": "rediss://h:1/0", "broker_url": "amqp://g@h//", "sources": [good_source()]})
    monkeypatch.setenv("TRAILPIPE_REDIS_URL", "htp://user:s3cret@h:1/0")
    with pytest.raises(ConfigError) as failure:
        config.redis_url_value()
    assert "TRAILPIPE_REDIS_URL is not a Redis URL" in failure.value.problems[0]
    assert "s3cret" not in str(failure.value.problems)


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    (folder / "certs").mkdir(parents=True)
    (folder / "keys").mkdir()
    (folder / "secret").write_text("s" * 40)
    source = good_source(auth={"method": "access_key", "access_key_id": "AKIA", "secret_access_key_file": "secret"},
                         trusted_certificates_dir="certs", integrity={"enabled": True, "public_keys_dir": "./keys"})
    import yaml

    (folder / "c.yaml").write_text(yaml.safe_dump({"state_dir": "state", "sources": [source]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("TRAILPIPE_STATE_DIR", raising=False)
    config = load_config("../conf/c.yaml")
    (loaded,) = config.sources
    assert config.state_path == folder / "state"
    assert loaded.auth.secret_access_key_file == str(folder / "secret")
    assert loaded.trusted_certificates_dir == str(folder / "certs")
    assert loaded.integrity.public_keys_dir == str(folder / "keys")
    # From the config's own folder it is the same; an absolute path stays as it is.
    monkeypatch.chdir(folder)
    assert load_config("c.yaml").state_path == folder / "state"
    (folder / "c.yaml").write_text(yaml.safe_dump({"state_dir": str(tmp_path / "abs"), "sources": [source]}))
    assert load_config(folder / "c.yaml").state_path == tmp_path / "abs"


def test_every_setting_comes_from_the_config():
    """Each shared key set to another value than its default changes its field of Settings: no
    field is left at a default the config never reaches (backpressure_max_wait once was)."""
    import dataclasses

    from pipeline.settings import Settings

    config = parse_config({
        "sources": [good_source()], "key_prefix": "tp", "stream": "tp:e", "deadletter_stream": "tp:d",
        "state_retention": "2D", "requeue_after_seconds": 61, "heartbeat_timeout_seconds": 11,
        "sweep_interval_seconds": 6, "visibility_timeout_seconds": 61, "stream_maxlen": 9, "deadletter_maxlen": 8,
        "wait_replicas": 1, "batch_size": 7, "max_attempts": 6, "stream_high_watermark": 5,
        "backpressure_max_wait": "2M"})

    def leaves(value, path: str = ""):
        if dataclasses.is_dataclass(value):
            for item in dataclasses.fields(value):
                yield from leaves(getattr(value, item.name), f"{path}.{item.name}")
        else:
            yield path, value

    configured, default = dict(leaves(Settings.of(config))), dict(leaves(Settings.default()))
    assert configured.keys() == default.keys()
    assert [path for path in default if configured[path] == default[path]] == []
    assert Settings.of(config).ingest.backpressure_max_wait == timedelta(minutes=2)
    assert Settings.of(config).store.requeue_after == timedelta(seconds=61)


def test_no_default_of_defaults_py_is_written_again():
    """The defaults the config declares are the only ones: no parameter, dataclass field or
    ``Field(default=...)`` elsewhere in pipeline/ or workers/ has one of defaults.py's numbers or
    durations as its default, nor names a default the config declares."""
    import ast

    from pipeline import defaults

    root = Path(__file__).resolve().parents[1]
    config_source = ast.parse((root / "pipeline" / "config.py").read_text())
    declared = {node.value.attr for node in ast.walk(config_source)  # Field(default=defaults.X), x: T = defaults.X
                if isinstance(node, (ast.keyword, ast.AnnAssign)) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "defaults"}
    assert {"BATCH_SIZE", "STATE_RETENTION", "KEY_PREFIX", "MAX_RECORD_BYTES"} <= declared
    values = [value for name in dir(defaults) if name.isupper()
              for value in [getattr(defaults, name)]
              if isinstance(value, int | float | timedelta) and not isinstance(value, bool)]

    def literal(node: ast.expr):
        try:
            return ast.literal_eval(node)
        except ValueError:
            pass
        if isinstance(node, ast.BinOp | ast.Call) and all(
                isinstance(n, ast.Constant | ast.BinOp | ast.operator | ast.keyword | ast.Call | ast.Name | ast.Load)
                for n in ast.walk(node)) and all(n.id == "timedelta" for n in ast.walk(node) if isinstance(n, ast.Name)):
            return eval(compile(ast.Expression(node), "default", "eval"), {"timedelta": timedelta})  # noqa: S307
        return None

    repeated = []
    for path in sorted([*root.glob("pipeline/**/*.py"), *root.glob("workers/**/*.py")]):
        if path.name in ("defaults.py", "config.py") and path.parent.name == "pipeline":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[ast.expr] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                found += [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            elif isinstance(node, ast.ClassDef):
                found += [item.value for item in node.body if isinstance(item, ast.AnnAssign) and item.value]
            elif isinstance(node, ast.Call):
                found += [item.value for item in node.keywords if item.arg == "default"]
            for default in found:
                if (isinstance(default, ast.Attribute) and isinstance(default.value, ast.Name)
                        and default.value.id == "defaults" and default.attr in declared):
                    repeated.append(f"{path.relative_to(root)}:{default.lineno}: defaults.{default.attr}")
                value = literal(default)
                if any(type(value) is type(known) and value == known for known in values):
                    repeated.append(f"{path.relative_to(root)}:{default.lineno}: {ast.unparse(default)}")
    assert repeated == []


def test_the_seconds_keys_stay_as_written_and_load_as_durations():
    """requeue_after_seconds, heartbeat_timeout_seconds, sweep_interval_seconds and
    visibility_timeout_seconds: whole seconds in the file (the keys users write), timedeltas once
    loaded; their bounds and messages as for any integer; the attribute names are no keys."""
    config = parse_config({"sources": [good_source()], "requeue_after_seconds": "120", "heartbeat_timeout_seconds": 10,
                           "sweep_interval_seconds": 5, "visibility_timeout_seconds": 3600})
    assert (config.requeue_after, config.heartbeat_timeout, config.sweep_interval, config.visibility_timeout) == (
        timedelta(minutes=2), timedelta(seconds=10), timedelta(seconds=5), timedelta(hours=1))
    assert problems_of(good_source(), requeue_after_seconds=59) == [
        "field 'requeue_after_seconds': must be at least 60"]
    assert problems_of(good_source(), sweep_interval_seconds=1.5) == [
        "field 'sweep_interval_seconds': must be a whole number"]
    assert problems_of(good_source(), heartbeat_timeout_seconds="soon") == [
        "field 'heartbeat_timeout_seconds': must be a whole number"]
    assert problems_of(good_source(), requeue_after=60) == [
        "field 'requeue_after': is not a known parameter (did you mean 'requeue_after_seconds'?)"]
    # past what a duration holds: an error naming the field (it was a crash)
    (problem,) = problems_of(good_source(), heartbeat_timeout_seconds=10**20)
    assert problem.startswith("field 'heartbeat_timeout_seconds': must be at most"), problem
