"""Story of notebook 02: feature-space neighbours share semantics, not pixels.

Queries are mirrored, darkened, shifted copies of the offline pool's images (same content,
other pixels). Their nearest neighbour in the bundled model's penultimate features carries
the query's label far more often than their nearest neighbour in pixel space.
"""

from __future__ import annotations

import pytest

from introspect_lab import normalize
from introspect_lab.datasets import offline_pool
from introspect_lab.features import extract_features, nearest_neighbors


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    import os

    old = os.environ.get("INTROSPECT_LAB_DATA")
    os.environ["INTROSPECT_LAB_DATA"] = str(tmp_path_factory.mktemp("data"))
    try:
        return offline_pool(per_class=6, size=96)
    finally:
        if old is None:
            del os.environ["INTROSPECT_LAB_DATA"]
        else:
            os.environ["INTROSPECT_LAB_DATA"] = old


def _transformed(x01, size):
    return x01.flip(-1).roll((size // 16, size // 16), dims=(2, 3)) * 0.6


def test_feature_neighbours_share_the_label_pixel_neighbours_do_not(lite0, pool):
    feats = extract_features(lite0, pool)
    queries = _transformed(pool.float01(), pool.size)
    q_feats = extract_features(lite0, normalize(queries, lite0))
    by_features = nearest_neighbors(feats, q_feats, k=1).indices[:, 0].numpy()
    by_pixels = nearest_neighbors(pool.float01(), queries, k=1).indices[:, 0].numpy()
    acc_features = (pool.labels[by_features] == pool.labels).mean()
    acc_pixels = (pool.labels[by_pixels] == pool.labels).mean()
    chance = 1 / len(pool.label_names)
    assert acc_features > 0.5, acc_features
    assert acc_features > 3 * acc_pixels, (acc_features, acc_pixels)
    assert acc_pixels < 4 * chance  # darkening and mirroring defeat pixel distance
