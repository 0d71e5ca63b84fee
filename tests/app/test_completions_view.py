"""Online-RL events on the Train page: the reward is plotted beside the loss and sampled answers are listed."""

from __future__ import annotations


def test_rl_events_plot_reward_and_list_answers(qtbot, state, settings):
    from app.train_page import TrainPage

    page = TrainPage(state, settings)
    qtbot.addWidget(page)
    page.handle_event({"v": 1, "type": "step", "time": 1.0, "step": 1, "total_steps": 4, "epoch": 0.1, "loss": 0.0,
                       "lr": 1e-4, "grad_norm": 0.1, "tokens_per_s": 10.0, "peak_memory_gb": 1.0,
                       "metrics": {"reward": 0.42, "reward_length": 0.42, "kl": 0.0}}, live=False)
    samples = [{"prompt": "What is 2+2?", "completion": f"Four, answer {i}.", "rewards": {"length": 0.1 * i},
                "advantage": 0.0} for i in range(3)]
    page.handle_event({"v": 1, "type": "completions", "time": 1.0, "step": 1, "samples": samples}, live=False)
    assert "reward 0.42" in page.labels["metrics"].text()
    view = page.completions_view
    assert view.rowCount() == 3 and view.item(0, 2).text() == "Four, answer 0." and "length 0.00" in view.item(0, 3).text()
    page.clear_plots()
    assert view.rowCount() == 0 and view.isHidden()


def test_rl_section_shows_for_both_rl_stages(qtbot, state):
    from app.config_form import ConfigForm
    from app.stage_info import key_applies

    assert key_applies("rl.beta", "grpo") and key_applies("rl.beta", "rloo") and not key_applies("rl.beta", "sft")
    assert key_applies("optim.lr", "sft") and not key_applies("dpo.beta", "grpo")
    form = ConfigForm(state)
    qtbot.addWidget(form)
    for stage, shown in (("grpo", True), ("rloo", True), ("dpo", False)):
        state.set("stage", stage)
        assert form.sections["rl"].isVisibleTo(form) is shown


def test_reward_picker_writes_rl_rewards(qtbot, state):
    from app.reward_picker import RewardPicker

    picker = RewardPicker(state)
    qtbot.addWidget(picker)
    state.set("stage", "sft")
    assert picker.isHidden()
    state.set("stage", "grpo")
    assert not picker.isHidden()
    picker.add_entry("length")
    picker.add_entry("rm:runs/rm")
    picker.add_entry("length")  # already there
    assert state.get("rl.rewards") == "[length, 'rm:runs/rm']" and picker.list.count() == 2
    picker.list.setCurrentRow(0)
    picker.remove_selected()
    assert picker.entries() == ["rm:runs/rm"]
    assert "exact_answer" in [picker.builtin.itemText(i) for i in range(picker.builtin.count())]
