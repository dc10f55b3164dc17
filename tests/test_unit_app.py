import importlib

import pytest

import app


def test_importing_app_starts_nothing():
    module = importlib.reload(app)  # would block or load a model if the entry were not guarded
    assert callable(module.main)


def test_defaults_are_local_and_automatic():
    args = app.parse_args([])
    assert (args.backend, args.engine, args.server_name, args.share) == ("auto", "auto", "127.0.0.1", False)


def test_auth_from_value_file_and_environment(tmp_path, monkeypatch):
    assert app.load_auth("ann:pw") == [("ann", "pw")]
    users = tmp_path / "users"
    users.write_text("# admins\nann:pw1\nbob:pw:2\n")
    assert app.load_auth(str(users)) == [("ann", "pw1"), ("bob", "pw:2")]
    monkeypatch.setenv(app.AUTH_ENV, "env:pw")
    assert app.load_auth(None) == [("env", "pw")]


def test_auth_is_taken_several_times_and_mixed_with_files(tmp_path, monkeypatch):
    monkeypatch.delenv(app.AUTH_ENV, raising=False)
    users = tmp_path / "users"
    users.write_text("ann:pw1\n")
    args = app.parse_args(["--auth", str(users), "--auth", "bob:pw2"])
    assert app.load_auth(args.auth) == [("ann", "pw1"), ("bob", "pw2")]
    with pytest.raises(SystemExit, match="--auth: ann given more than once"):
        app.load_auth([str(users), "ann:other"])


def test_malformed_auth_is_refused(monkeypatch):
    monkeypatch.delenv(app.AUTH_ENV, raising=False)
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        app.load_auth("no-colon")


def test_a_public_link_needs_a_login_or_an_explicit_opt_out():
    with pytest.raises(SystemExit, match="add --auth"):
        app.check_sharing(app.parse_args(["--share"]), auth=None)
    assert app.check_sharing(app.parse_args(["--share"]), auth=[("ann", "pw")]) is None
    warning = app.check_sharing(app.parse_args(["--share", "--share-without-auth"]), auth=None)
    assert "anyone with the link" in warning
    assert app.check_sharing(app.parse_args([]), auth=None) is None
