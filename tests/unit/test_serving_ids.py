"""HMAC-signed impression ids: issued ids verify, anything altered does not, the key file is private."""

import stat

import pytest

from serving.impression_id import ImpressionSigner, InvalidImpressionId, load_key


def test_issued_id_round_trips():
    signer = ImpressionSigner(b"k" * 32)
    ref = signer.verify(signer.issue(41, 1_700_000_000_123))
    assert (ref.serial, ref.issued_ms) == (41, 1_700_000_000_123)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), "signature does not verify"),
        (lambda s: "2" + s[1:], "signature does not verify"),  # another slate, same tag
        (lambda s: s.replace(".", ".0", 1), "malformed"),  # non-canonical hex
        (lambda s: "0x" + s, "malformed"),
        (lambda s: s.split(".")[0], "malformed"),
        (lambda s: "zz." + s.split(".", 1)[1], "malformed"),
        (lambda s: "f" * 17 + "." + s.split(".", 1)[1], "malformed"),
        (lambda s: "", "malformed"),
        (lambda s: s[:-1] + "é", "signature does not verify"),  # non-ASCII tag: compare_digest raised TypeError
        (lambda s: s[:-1] + "\udcff", "signature does not verify"),  # a lone surrogate, as JSON can carry
    ],
)
def test_forged_or_malformed_ids_are_rejected(mutate, match):
    signer = ImpressionSigner(b"k" * 32)
    with pytest.raises(InvalidImpressionId, match=match):
        signer.verify(mutate(signer.issue(1, 1000)))


def test_another_key_does_not_verify():
    issued = ImpressionSigner(b"a" * 32).issue(1, 1000)
    with pytest.raises(InvalidImpressionId, match="signature does not verify"):
        ImpressionSigner(b"b" * 32).verify(issued)


def test_key_file_is_generated_once_with_mode_0600(tmp_path):
    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / "impression.key").stat().st_mode) == 0o600
    assert load_key(tmp_path, secret="from-the-environment-0123456789") == b"from-the-environment-0123456789"


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda d: ImpressionSigner(b"short"), "HMAC key has 5 bytes; use at least 16"),
        (lambda d: ((d / "impression.key").write_bytes(b"x"), load_key(d)), "impression.key: HMAC key is 1 bytes; delete"),
    ],
)
def test_weak_keys_are_refused(tmp_path, action, match):
    with pytest.raises(ValueError, match=match):
        action(tmp_path)
