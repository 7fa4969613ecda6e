"""`dripline simulate PIPELINE.json`: the engine's timeline as a table, no stack, no AWS."""
import json

from dripline_local import cli

PIPELINE = {"name": "Onboarding", "steps": [
    {"step_number": 1, "action_type": "send_email", "delay_seconds": 0,
     "message": "Hi {{ contact.first_name }}", "data": {"subject": "Welcome"}},
    {"step_number": 2, "action_type": "send_email", "delay_seconds": 86400,
     "message": "Tips", "data": {"subject": "Day two"},
     "send_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}},
    {"step_number": 3, "action_type": "create_task", "delay_seconds": 3600, "message": "Call {{ contact.email }}"},
]}


def rows(text):
    return [line.split() for line in text.splitlines()[2:] if line.strip() and not line.startswith(("completed", "failed"))]


def test_the_table_shows_each_attempt_its_backoff_and_the_end(tmp_path, capsys):
    path = tmp_path / "onboarding.json"
    path.write_text(json.dumps(PIPELINE))

    code = cli.main(["simulate", str(path), "--fail", "2x2", "--start", "2026-03-05T16:59:30Z"])

    out = capsys.readouterr().out
    assert code == 0
    # step 2 falls due at 16:59:30 Friday, its tick (17:00) is outside the window: Monday 09:00, then two retries
    assert [(r[0], r[2], r[7]) for r in rows(out)] == [
        ("1", "1", "succeeded"), ("2", "1", "rescheduled"), ("2", "1", "retry"), ("2", "2", "retry"),
        ("2", "3", "succeeded"), ("3", "1", "succeeded")]
    assert [r[-3] for r in rows(out) if r[7] == "retry"] == ["60s", "120s"]
    assert out.rstrip().endswith("completed at 2026-03-09 10:03:00 (enrolled 2026-03-05 16:59:30; 6 attempts)")


def test_a_bad_pipeline_file_is_refused_by_the_apis_rules(tmp_path, capsys):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"name": "Typo", "steps": [{**PIPELINE["steps"][0], "message": "{{ contact.frist_name }}"}]}))

    code = cli.main(["simulate", str(path)])

    assert code == 2 and "contact.frist_name" in capsys.readouterr().err
