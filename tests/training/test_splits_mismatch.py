"""assign_splits: val and test from the target source only, groups and duplicates never in
two splits, stored splits never moved unless asked, the sizes rule at several N."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import pytest

from training.splits import (
    SizeRequest,
    SplitError,
    SplitItem,
    SplitResult,
    assign_splits,
    rule_sizes,
    split_sizes,
)

TRAINING = ("train", "train_val")


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def make_items(
    n: int, source: Callable[[int], str], start: int = 0, **fields: object
) -> list[SplitItem]:
    return [
        SplitItem(key=f"i{i}", content_hash=sha(i), source=source(i), **fields)
        for i in range(start, start + n)
    ]


def with_existing(items: Iterable[SplitItem], result: SplitResult) -> list[SplitItem]:
    """The items as the service passes them the next time: with their stored splits."""
    return [
        SplitItem(i.key, i.content_hash, i.source, i.groups, i.phash, result.splits.get(i.key))
        for i in items
    ]


def split_sources(items: list[SplitItem], result: SplitResult) -> dict[str, Counter[str]]:
    source = {i.key: i.source for i in items}
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for key, split in result.splits.items():
        out[split][source[key]] += 1
    return out


def assert_groups_whole(items: list[SplitItem], result: SplitResult) -> None:
    splits_of: dict[str, set[str]] = defaultdict(set)
    for item in items:
        for group in item.groups:
            if item.key in result.splits:
                splits_of[group].add(result.splits[item.key])
    assert all(len(s) == 1 for s in splits_of.values()), splits_of


# ---------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("target", "total", "each"),
    [
        (1_000, 1_000, 200),  # under 10,000, one source: 60/20/20
        (9_999, 9_999, 2_000),
        (30_000, 30_000, 6_000),  # 20% is still under 10,000 each
        (50_000, 50_000, 10_000),
        (200_000, 200_000, 10_000),  # enough: 10,000 each, 90/5/5
        (1_000_000, 1_000_000, 10_000),  # 98/1/1
        (3_000_000, 3_000_000, 30_000),  # over 1,000,000: 1% each
        (10_000, 210_000, 3_905),  # the notes' 200,000 web + 10,000 app: most app in val/test
        (500, 1_000, 150),  # half the data from the target: 30% each
        (1, 1, 0),
        (3, 3, 1),
    ],
)
def test_rule_sizes(target: int, total: int, each: int) -> None:
    assert rule_sizes(target, total) == (each, each)


def test_train_val_is_as_big_as_val_at_most_a_tenth_of_the_pool() -> None:
    alone = split_sizes(1_000, 1_000)
    assert (alone.val, alone.test, alone.train_val) == (200, 200, 60)  # 10% of 600
    mixed = split_sizes(10_000, 210_000)
    assert (mixed.val, mixed.train_val) == (3_905, 3_905)
    big = split_sizes(2_000_000, 2_000_000)
    assert (big.val, big.test, big.train_val) == (20_000, 20_000, 20_000)


def test_requested_sizes_fractions_and_counts() -> None:
    sizes = split_sizes(1_000, 5_000, SizeRequest(val=0.1, test=50, train_val=0.05))
    assert (sizes.val, sizes.test) == (100, 50)
    assert sizes.train_val == 243  # 5% of the 4,850 left for training, rounded half up
    assert "requested" in sizes.rule
    assert split_sizes(1_000, 1_000, SizeRequest(train_val=0)).train_val == 0


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (SizeRequest(val=600, test=500), "sizes_too_large"),
        (SizeRequest(val=-0.1), "invalid_sizes"),
        (SizeRequest(test=2.5), "invalid_sizes"),
        (SizeRequest(val=True), "invalid_sizes"),
        (SizeRequest(train_val=900), "sizes_too_large"),
    ],
)
def test_bad_size_requests(request_: SizeRequest, code: str) -> None:
    with pytest.raises(SplitError) as caught:
        split_sizes(1_000, 1_000, request_)
    assert caught.value.code == code


# ----------------------------------------------------------------------- the rules


def mixed_items() -> list[SplitItem]:
    """3,000 web and 1,000 app images."""
    return make_items(4_000, lambda i: "app" if i % 4 == 0 else "web")


def test_val_and_test_only_from_the_target_train_from_all() -> None:
    items = mixed_items()
    result = assign_splits(items, "app")
    by = split_sources(items, result)
    assert set(by["val"]) == {"app"} and set(by["test"]) == {"app"}
    # target is a quarter of the data: share 0.2 + 0.2 * 0.75 = 35% each of the 1,000
    assert (by["val"]["app"], by["test"]["app"]) == (350, 350)
    assert by["train"]["app"] + by["train_val"]["app"] == 300
    assert by["train"]["web"] + by["train_val"]["web"] == 3_000
    # train_val: as many as val (350) but at most 10% of the 3,300 left for training
    assert result.counts == {"train": 2_970, "train_val": 330, "val": 350, "test": 350}
    assert len(result.splits) == 4_000 and not result.left_out and not result.violations


def test_train_val_is_drawn_from_every_source_of_the_pool() -> None:
    items = mixed_items()
    by = split_sources(items, assign_splits(items, "app"))
    share_app = by["train_val"]["app"] / by["train_val"].total()
    assert abs(share_app - 300 / 3_300) < 0.04  # the pool's own mix, not skewed


def test_deterministic_and_seeded() -> None:
    items = mixed_items()
    assert assign_splits(items, "app").splits == assign_splits(list(reversed(items)), "app").splits
    assert assign_splits(items, "app", seed=1).splits != assign_splits(items, "app").splits


def test_unknown_target_source_lists_the_sources() -> None:
    with pytest.raises(SplitError) as caught:
        assign_splits(mixed_items(), "phone")
    assert caught.value.code == "unknown_source"
    assert caught.value.details == {"sources": ["app", "web"]}


def test_bad_items_are_refused() -> None:
    one = SplitItem("a", sha(1), "app")
    with pytest.raises(SplitError, match="own key"):
        assign_splits([one, one], "app")
    with pytest.raises(SplitError, match="Unknown existing"):
        assign_splits([SplitItem("a", sha(1), "app", existing="dev")], "app")


# ---------------------------------------------------------------- stability


def test_adding_items_moves_none() -> None:
    old = mixed_items()
    first = assign_splits(old, "app")
    grown = with_existing(old, first) + make_items(
        6_000, lambda i: "app" if i % 2 else "web", start=10_000
    )
    second = assign_splits(grown, "app")
    assert all(second.splits[k] == split for k, split in first.splits.items())
    assert not second.moved
    # the new ones fill the new sizes: 4,000 app of 10,000 -> 32% each = 1,280
    assert second.sizes.val == 1_280
    assert (second.counts["val"], second.counts["test"]) == (1_280, 1_280)
    assert second.added["val"] == 1_280 - 350
    assert assign_splits(grown, "app").splits == second.splits  # and again: the same


def test_sizes_already_exceeded_take_no_more() -> None:
    items = make_items(1_000, lambda i: "app")
    first = assign_splits(items, "app", sizes=SizeRequest(val=0.4, test=0.1))
    grown = with_existing(items, first) + make_items(500, lambda i: "app", start=5_000)
    second = assign_splits(grown, "app")  # the rule now: 20% of 1,500 = 300 each
    assert second.counts["val"] == 400 and second.added["val"] == 0
    assert second.counts["test"] == 300 and second.added["test"] == 200


# --------------------------------------------------------------- target change


def test_target_change_reports_and_moves_only_when_asked() -> None:
    items = mixed_items()
    before = assign_splits(items, "web")  # val/test are web images
    stored = with_existing(items, before)
    kept = assign_splits(stored, "app")
    assert kept.splits == before.splits and not kept.moved
    codes = {(p.code, p.splits) for p in kept.violations}
    assert codes == {("not_target", ("val",)), ("not_target", ("test",))}
    assert sum(len(p.keys) for p in kept.violations) == before.counts["val"] + before.counts["test"]

    repaired = assign_splits(stored, "app", keep_existing=False)
    by = split_sources(items, repaired)
    assert set(by["val"]) == {"app"} and set(by["test"]) == {"app"}
    assert (by["val"]["app"], by["test"]["app"]) == (350, 350)
    moves = Counter((m.from_split, m.to_split) for m in repaired.moved)
    # the web images leave val and test for the training pool; val and test refill with
    # app images from train; train_val is never touched
    out = sum(n for (a, b), n in moves.items() if a in ("val", "test") and b in TRAINING)
    assert out == before.counts["val"] + before.counts["test"] == 1_500
    assert moves[("train", "val")] == moves[("train", "test")] == 350
    assert sum(moves.values()) == 2_200
    assert all(
        repaired.splits[k] == "train_val" for k, s in before.splits.items() if s == "train_val"
    )
    assert not repaired.violations


def test_target_change_fills_val_and_test_from_new_target_images() -> None:
    items = mixed_items()
    stored = with_existing(items, assign_splits(items, "web"))
    grown = stored + make_items(500, lambda i: "app", start=20_000)
    result = assign_splits(grown, "app", keep_existing=False)
    by = split_sources(grown, result)
    assert set(by["val"]) == {"app"} and set(by["test"]) == {"app"}
    wanted = result.sizes.val + result.sizes.test
    assert by["val"]["app"] + by["test"]["app"] == wanted
    # new app images first; only the rest is moved out of train
    new_keys = {f"i{i}" for i in range(20_000, 20_500)}
    taken_new = sum(1 for k in new_keys if result.splits[k] in ("val", "test"))
    assert taken_new == 500
    assert sum(1 for m in result.moved if m.from_split == "train") == wanted - 500


# ------------------------------------------------------------ groups and leaks


def test_people_never_straddle_splits() -> None:
    items = [
        SplitItem(f"p{p}-{k}", sha(f"{p}-{k}"), "app", groups=(f"person{p}",))
        for p in range(40)
        for k in range(10)
    ]
    result = assign_splits(items, "app")
    assert_groups_whole(items, result)
    # 400 images, 80 each wanted: whole people of 10 images, 8 people each
    assert (result.counts["val"], result.counts["test"]) == (80, 80)
    assert result.counts["train_val"] == 20  # 10% of the 240 left for training, 2 people
    assert result.duplicate_groups == []  # people are not duplicates


def test_a_photo_of_two_people_ties_them_together() -> None:
    items = [
        SplitItem(f"p{p}-{k}", sha(f"{p}-{k}"), "app", groups=(f"person{p}",))
        for p in range(30)
        for k in range(5)
    ]
    items.append(SplitItem("both", sha("both"), "app", groups=("person3", "person17")))
    for seed in range(5):
        result = assign_splits(items, "app", seed=seed)
        assert_groups_whole(items, result)
        assert result.splits["p3-0"] == result.splits["p17-0"] == result.splits["both"]


def test_identical_and_near_identical_images_share_a_split() -> None:
    items = make_items(1_000, lambda i: "app", phash=None)
    base = [
        SplitItem(f"n{i}", sha(f"n{i}"), "app", phash=(i * 0x9E3779B97F4A7C15) % 2**64)
        for i in range(50)
    ]
    copies = [SplitItem(f"c{i}", base[i].content_hash, "app") for i in range(50)]  # same bytes
    near = [
        SplitItem(f"r{i}", sha(f"r{i}"), "app", phash=base[i].phash ^ 0b10110001)  # type: ignore[operator]
        for i in range(50)
    ]
    everything = items + base + copies + near
    result = assign_splits(everything, "app")
    for i in range(50):
        assert result.splits[f"n{i}"] == result.splits[f"c{i}"] == result.splits[f"r{i}"]
    groups = {g.keys: g for g in result.duplicate_groups}
    assert len(groups) == 50
    group = groups[("i1000", "i1050", "i1100")] if False else next(iter(groups.values()))
    assert group.kind == "near" and group.max_distance == 4 and len(group.splits) == 1
    assert {"n0", "c0", "r0"} == set(
        next(g.keys for g in result.duplicate_groups if "n0" in g.keys)
    )


def test_identical_only_group_is_reported_as_identical() -> None:
    items = [*make_items(100, lambda i: "app"), SplitItem("twin", sha(7), "app")]
    result = assign_splits(items, "app")
    assert [(g.keys, g.kind, g.max_distance) for g in result.duplicate_groups] == [
        (("i7", "twin"), "identical", 0)
    ]
    assert result.splits["i7"] == result.splits["twin"]


def test_a_group_mixing_sources_goes_to_the_training_pool() -> None:
    items = [
        SplitItem(f"g{g}-{s}", sha(f"{g}-{s}"), s, groups=(f"g{g}",))
        for g in range(200)
        for s in ("app", "web")
    ]
    result = assign_splits(items, "app")
    assert set(result.splits.values()) <= {"train", "train_val"}
    assert_groups_whole(items, result)


def test_a_new_web_copy_of_a_test_image_is_left_out() -> None:
    items = make_items(200, lambda i: "app")
    first = assign_splits(items, "app")
    in_test = next(k for k, s in first.splits.items() if s == "test")
    index = int(in_test[1:])
    copy = SplitItem("web-copy", sha(index), "web")  # the same bytes, from the web
    second = assign_splits(
        [*with_existing(items, first), copy, *make_items(5, lambda i: "web", 900)], "app"
    )
    assert "web-copy" not in second.splits
    assert [(p.code, p.keys, p.splits) for p in second.left_out] == [
        ("conflict", ("web-copy",), ("test",))
    ]
    assert second.splits[in_test] == "test"


def test_a_stored_group_spread_over_splits_is_reported_then_joined() -> None:
    items = [
        SplitItem(f"p{p}-{k}", sha(f"{p}-{k}"), "app", groups=(f"person{p}",))
        for p in range(20)
        for k in range(4)
    ]
    # an importer that split by image put person0 in three splits (train twice)
    spread = {"p0-0": "train", "p0-1": "train", "p0-2": "val", "p0-3": "test"}
    stored = [
        SplitItem(i.key, i.content_hash, i.source, i.groups, existing=spread.get(i.key))
        for i in items
    ]
    kept = assign_splits(stored, "app")
    assert [(p.code, p.splits) for p in kept.violations] == [("spread", ("train", "val", "test"))]
    assert [kept.splits[k] for k in spread] == ["train", "train", "val", "test"]
    joined = assign_splits(stored, "app", keep_existing=False)
    assert {joined.splits[k] for k in spread} == {"train"}
    assert {(m.key, m.from_split) for m in joined.moved} == {("p0-2", "val"), ("p0-3", "test")}
    assert_groups_whole(items, joined)


# --------------------------------------------------------------------- speed


def test_a_million_items_in_seconds() -> None:
    items = [
        SplitItem(
            f"i{i}",
            sha(i),
            "app" if i % 3 == 0 else "web",
            groups=(f"g{i // 4}",) if i % 5 == 0 else (),
        )
        for i in range(1_000_000)
    ]
    started = time.perf_counter()
    result = assign_splits(items, "app")
    elapsed = time.perf_counter() - started
    print(f"assign_splits: 1,000,000 items in {elapsed:.2f} s")
    assert elapsed < 30  # about 3 s on one core of the CI machine class
    assert result.counts["val"] == pytest.approx(10_000, abs=5)
    assert result.counts["test"] == pytest.approx(10_000, abs=5)
    assert sum(result.counts.values()) == 1_000_000
    assert_groups_whole(items[:100_000], result)
