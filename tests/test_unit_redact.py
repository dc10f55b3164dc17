"""Credentials in a URL and the configured API key never reach what the console shows."""

import httpx
import openai

from backends.redact import hide_credentials, mask_secret
from backends.remote import _translate

KEY = "sk-live-0123456789"
URL = "http://bob:s3cret@gpu-box:23333/v1"


def test_credentials_in_a_url_are_hidden():
    assert hide_credentials(URL) == "http://***@gpu-box:23333/v1"
    assert hide_credentials(f"cannot reach {URL}: refused") == "cannot reach http://***@gpu-box:23333/v1: refused"
    assert hide_credentials("http://gpu-box:23333/v1") == "http://gpu-box:23333/v1"


def test_the_key_is_masked_in_a_servers_error_text():
    request = httpx.Request("POST", "http://gpu-box:23333/v1/chat/completions")
    echoed = f"bad request; headers: Authorization: Bearer {KEY}"
    error = openai.BadRequestError(
        echoed, response=httpx.Response(400, request=request), body={"error": {"message": echoed}}
    )
    shown = str(_translate(error, URL, KEY))
    assert KEY not in shown and "s3cret" not in shown
    assert "Bearer ***" in shown and "http://***@gpu-box:23333/v1 answered 400" in shown


def test_a_short_or_absent_key_masks_nothing():
    assert mask_secret("none of it", "none") == "none of it"
    assert mask_secret("abc", None) == "abc"


def test_the_reproduce_code_of_a_remote_preset_hides_the_password():
    from backends import BackendInfo, BackendSpec
    from backends.reproduce import remote_commands

    text = remote_commands(BackendSpec(kind="remote", base_url=URL), BackendInfo("remote", "m", "openai-compatible"))
    assert "s3cret" not in text and "http://***@gpu-box:23333/v1" in text
