"""Exit conditions (dripline.exits): the grammar's validation and the evaluator, with
examples and properties (hypothesis) over generated conditions and records."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripline import engine
from dripline.domain import ContactView, PipelineSpec, RunStatus, Step
from dripline.errors import ValidationFailed
from dripline.exits import MAX_DEPTH, MAX_LEAVES, ExitCondition, record_of


def holds(condition, record):
    return ExitCondition.parse(condition, "contact").evaluate(record)


def contact(**attributes):
    return {"email": "ada@example.com", "first_name": "Ada", "last_name": None, "timezone": "Europe/London",
            "attributes": attributes}


# --- examples -------------------------------------------------------------------------------------


def test_an_attribute_that_equals_the_value_holds_at_the_root():
    assert holds({"attribute": "plan", "equals": "paid"}, contact(plan="paid")) == "exit_when"
    assert holds({"attribute": "plan", "equals": "paid"}, contact(plan="trial")) is None
    assert holds({"attribute": "plan", "equals": "paid"}, contact()) is None


def test_a_field_condition_reads_the_record_s_field_not_its_attributes():
    assert holds({"field": "timezone", "equals": "Europe/London"}, contact()) == "exit_when"
    assert holds({"field": "first_name", "equals": "Ada"}, contact(first_name="Bob")) == "exit_when"
    assert holds({"attribute": "first_name", "equals": "Ada"}, contact()) is None


def test_numbers_equal_by_value_and_booleans_only_booleans():
    assert holds({"attribute": "seats", "equals": 1}, contact(seats=1.0)) == "exit_when"
    assert holds({"attribute": "seats", "equals": 0.1}, contact(seats=Decimal("0.1"))) == "exit_when"
    assert holds({"attribute": "seats", "equals": 1}, contact(seats=True)) is None
    assert holds({"attribute": "paid", "equals": True}, contact(paid=1)) is None
    assert holds({"attribute": "paid", "equals": True}, contact(paid=True)) == "exit_when"
    assert holds({"attribute": "seats", "equals": "1"}, contact(seats=1)) is None
    assert holds({"attribute": "tags", "equals": "vip"}, contact(tags=["vip"])) is None


def test_exists_treats_null_as_absent():
    assert holds({"attribute": "demo", "exists": True}, contact(demo="2026-03-01")) == "exit_when"
    assert holds({"attribute": "demo", "exists": True}, contact(demo=None)) is None
    assert holds({"attribute": "demo", "exists": False}, contact(demo=None)) == "exit_when"
    assert holds({"field": "last_name", "exists": False}, contact()) == "exit_when"
    assert holds({"attribute": "demo", "exists": True}, contact(demo="")) == "exit_when"  # empty is present


def test_in_holds_for_any_listed_value():
    condition = {"attribute": "plan", "in": ["pro", "enterprise", 3]}
    assert [holds(condition, contact(plan=p)) for p in ("pro", "enterprise", 3.0, "trial")] == [
        "exit_when", "exit_when", "exit_when", None]


def test_any_answers_the_first_child_that_held_and_all_answers_itself():
    condition = {"any": [{"attribute": "plan", "equals": "paid"},
                         {"all": [{"attribute": "demo", "exists": True}, {"field": "timezone", "exists": True}]}]}
    parsed = ExitCondition.parse(condition, "contact")
    assert parsed.evaluate(contact(demo="yes")) == "exit_when.any[1]"
    assert parsed.evaluate(contact(plan="paid", demo="yes")) == "exit_when.any[0]"
    assert parsed.evaluate(contact(plan="trial")) is None
    assert parsed.at("exit_when.any[1]") == condition["any"][1]
    assert parsed.at("exit_when") == condition
    assert parsed.at("exit_when.any[7]") is None and parsed.at("exit_when.all[0]") is None and parsed.at("x") is None


def test_record_of_a_contact_view_holds_its_fields_and_attributes():
    view = ContactView("acme", "c1", "ada@example.com", first_name="Ada", attributes={"plan": "paid"})
    assert record_of("contact", view) == {"email": "ada@example.com", "first_name": "Ada", "last_name": None,
                                          "timezone": None, "attributes": {"plan": "paid"}}


@pytest.mark.parametrize(
    "condition, field, words",
    [
        ("paid", "exit_when", "must be an object"),
        ({"attribute": "plan"}, "exit_when", "exactly one of equals, in, exists"),
        ({"equals": "paid"}, "exit_when", "exactly one of field or attribute"),
        ({"attribute": "plan", "field": "email", "equals": "x"}, "exit_when", "exactly one of field or attribute"),
        ({"attribute": "plan", "equals": "x", "in": ["y"]}, "exit_when", "exactly one of"),
        ({"attribute": "plan", "equal": "paid"}, "exit_when.equal", "unknown key"),
        ({"field": "stage", "equals": "won"}, "exit_when.field", "unknown field 'stage'"),
        ({"attribute": "", "equals": "x"}, "exit_when.attribute", "1-128"),
        ({"attribute": "plan", "equals": None}, "exit_when.equals", "use exists"),
        ({"attribute": "plan", "equals": ["a"]}, "exit_when.equals", "a string, a finite number"),
        ({"attribute": "plan", "equals": float("inf")}, "exit_when.equals", "finite"),
        ({"attribute": "plan", "equals": "x" * 257}, "exit_when.equals", "at most 256"),
        ({"attribute": "plan", "in": []}, "exit_when.in", "1-50"),
        ({"attribute": "plan", "in": ["a", {"b": 1}]}, "exit_when.in[1]", "a string"),
        ({"attribute": "plan", "exists": "yes"}, "exit_when.exists", "true or false"),
        ({"any": []}, "exit_when.any", "1-20"),
        ({"any": [{"attribute": "a", "exists": True}], "all": []}, "exit_when.all", "not allowed next to 'any'"),
        ({"all": [{"attribute": "a", "exists": True}, {"any": [{"attribute": "b", "equals": 1}, {"field": "phone", "exists": True}]}]},
         "exit_when.all[1].any[1].field", "unknown field 'phone'"),
    ],
)
def test_a_bad_condition_names_the_offending_field(condition, field, words):
    with pytest.raises(ValidationFailed) as caught:
        ExitCondition.parse(condition, "contact")
    assert caught.value.field == field and words in caught.value.message


def test_depth_leaves_and_size_are_capped():
    leaf = {"attribute": "a", "exists": True}
    deep = leaf
    for _ in range(MAX_DEPTH):
        deep = {"any": [deep]}
    ExitCondition.parse(deep, "contact")
    with pytest.raises(ValidationFailed, match="nests too deeply") as caught:
        ExitCondition.parse({"all": [deep]}, "contact")
    assert caught.value.field == "exit_when.all[0].any[0].any[0].any[0].any"

    many = {"any": [{"any": [leaf] * 10}, {"any": [leaf] * 10}, leaf]}
    with pytest.raises(ValidationFailed, match=f"at most {MAX_LEAVES}") as caught:
        ExitCondition.parse(many, "contact")
    assert caught.value.field == "exit_when.any[2]"

    big = {"any": [{"attribute": f"a{i}", "in": ["x" * 250] * 2} for i in range(10)]}
    with pytest.raises(ValidationFailed, match="too large"):
        ExitCondition.parse(big, "contact")


def test_a_stored_condition_loads_without_a_model_type_whatever_its_field_names():
    assert ExitCondition.parse({"field": "stage", "equals": "won"}).evaluate({"stage": "won"}) == "exit_when"


# --- the engine's pre-step check -----------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def spec(exit_when=None):
    return PipelineSpec("acme", "p1", 1, "Trial", "contact", (Step(1, "send_email", 0), Step(2, "send_email", 86400)),
                        exit_when=ExitCondition.parse(exit_when, "contact") if exit_when else None)


def test_a_met_exit_condition_ends_the_run_exited_without_recording_the_step():
    trial = spec({"any": [{"attribute": "plan", "equals": "paid"}, {"field": "email", "in": ["x@example.com"]}]})

    result = engine.exit_check(trial, contact(plan="paid"))
    decision = engine.after_step(trial, 2, result, scheduled_at=T0, executed_at=T0, failed_attempts_before=1,
                                 max_attempts=5, retry_base_seconds=60, retry_max_seconds=3600)

    assert decision.schedule.status is RunStatus.EXITED
    assert decision.schedule.next_step_number is None and decision.schedule.next_step_at is None
    assert decision.history is None and decision.exit_match == "exit_when.any[0]" and decision.last_error is None


def test_no_condition_or_one_not_met_lets_the_step_run():
    assert engine.exit_check(spec(), contact(plan="paid")) is None
    assert engine.exit_check(spec({"attribute": "plan", "equals": "paid"}), contact(plan="trial")) is None


# --- properties -----------------------------------------------------------------------------------

NAMES = ["plan", "seats", "demo", "score"]
scalars = st.one_of(st.sampled_from(["paid", "trial", "pro", ""]), st.integers(-3, 3), st.sampled_from([0.5, 1.0, 2.5]),
                    st.booleans())
leaves = st.one_of(
    st.builds(lambda n, v: {"attribute": n, "equals": v}, st.sampled_from(NAMES), scalars),
    st.builds(lambda n, vs: {"attribute": n, "in": vs}, st.sampled_from(NAMES), st.lists(scalars, min_size=1, max_size=4)),
    st.builds(lambda n, b: {"attribute": n, "exists": b}, st.sampled_from(NAMES), st.booleans()),
    st.builds(lambda f, v: {"field": f, "equals": v}, st.sampled_from(["email", "first_name"]), scalars),
)


def groups(children):
    return st.builds(lambda kind, items: {kind: items}, st.sampled_from(["any", "all"]), st.lists(children, min_size=1, max_size=3))


conditions = st.recursive(leaves, groups, max_leaves=MAX_LEAVES)
values = st.one_of(st.none(), scalars, st.lists(scalars, max_size=2), st.dictionaries(st.just("k"), scalars, max_size=1))
records = st.builds(
    lambda attributes, first: {"email": "ada@example.com", "first_name": first, "attributes": attributes},
    st.dictionaries(st.sampled_from(NAMES), values, max_size=4),
    st.one_of(st.none(), scalars),
)


def naive(condition, record):
    """The grammar's meaning, written the obvious way."""
    if "any" in condition:
        return any(naive(c, record) for c in condition["any"])
    if "all" in condition:
        return all(naive(c, record) for c in condition["all"])
    value = record.get(condition["field"]) if "field" in condition else record["attributes"].get(condition["attribute"])
    if "exists" in condition:
        return (value is not None) is condition["exists"]
    options = condition["in"] if "in" in condition else [condition["equals"]]
    return value is not None and any(
        type(value) is type(o) and value == o if isinstance(o, (bool, str)) or isinstance(value, (bool, str))
        else isinstance(value, (int, float)) and value == o
        for o in options
    )


def depth(condition):
    kids = condition.get("any") or condition.get("all")
    return 0 if kids is None else 1 + max(depth(k) for k in kids)


@settings(max_examples=400, deadline=None)
@given(conditions, records)
def test_evaluation_agrees_with_the_grammar_s_meaning(condition, record):
    if depth(condition) > MAX_DEPTH:
        with pytest.raises(ValidationFailed):
            ExitCondition.parse(condition, "contact")
        return
    parsed = ExitCondition.parse(condition, "contact")
    assert (parsed.evaluate(record) is not None) == naive(condition, record)


@settings(max_examples=400, deadline=None)
@given(conditions, records)
def test_the_path_answered_names_a_condition_that_holds_on_its_own(condition, record):
    if depth(condition) > MAX_DEPTH:
        return
    parsed = ExitCondition.parse(condition, "contact")
    path = parsed.evaluate(record)
    if path is None:
        return
    node = parsed.at(path)
    assert node is not None and naive(node, record)
    # Under an `any` the answer is a leaf or an `all`, never the `any` itself.
    assert "any" not in node


@given(st.sampled_from(NAMES), scalars, records)
def test_in_one_value_is_equals_and_exists_true_and_false_are_complements(name, value, record):
    assert holds({"attribute": name, "in": [value]}, record) == holds({"attribute": name, "equals": value}, record)
    present = holds({"attribute": name, "exists": True}, record) is not None
    absent = holds({"attribute": name, "exists": False}, record) is not None
    assert present != absent


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
              st.sampled_from(["any", "all", "field", "attribute", "equals", "in", "exists", "email", "plan"])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["any", "all", "field", "attribute", "equals", "in", "exists", "x"]), children, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values, records)
def test_any_json_is_either_a_valid_condition_or_a_422_never_a_crash(raw, record):
    try:
        parsed = ExitCondition.parse(raw, "contact")
    except ValidationFailed as refused:
        assert refused.field.startswith("exit_when")
        return
    path = parsed.evaluate(record)
    assert path is None or parsed.at(path) is not None
