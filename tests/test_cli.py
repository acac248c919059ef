"""The command line's contract: flags -> config, one-line errors, a helpful --help.

Most cases parse flags in process (every experiment module imported together,
as ``experiments.reproduce`` does); a few subprocesses check what only a real
process shows: the exit code, one line on stderr, no folder made.
"""

import dataclasses

import pytest
from absl import flags

import experiments.batch_size
import experiments.gradcheck
import experiments.landscape
import experiments.reproduce
import experiments.stability
import experiments.step_size
import experiments.sweep
import experiments.train  # noqa: F401  (all modules import into one process)
from experiments import common
from linopt import configs, presets

CONFIGS = {
    "train": configs.TrainConfig,
    "sweep": configs.SweepConfig,
    "gradcheck": configs.GradcheckConfig,
    "landscape": configs.LandscapeConfig,
    "step_size": configs.StepSizeConfig,
    "reproduce": configs.ReproduceConfig,
    "batch_size": configs.BatchSizeConfig,
    "stability": configs.StabilityConfig,
}


def parse(experiment, *args):
    """The resolved config of ``python -m experiments.<experiment> <args>``."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["prog", *args])
        config = common.config_from_flags(CONFIGS[experiment])
        return presets.resolve(config)[0]
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.parametrize(
    "experiment, args, message",
    [
        ("train", ["--batch_size=0"], "batch_size must be >= 1"),
        ("train", ["--num_steps=-3"], "num_steps must be >= 1"),
        ("train", ["--learning_rate=-1"], "learning_rate must be a finite number > 0"),
        ("train", ["--momentum=0.5"], "momentum changes nothing"),
        ("train", ["--schedule=step"], "needs a decay_rate"),
        ("train", ["--strategy=sgd", "--batch_size=8"], "sgd uses batch size 1"),
        ("train", ["--strategy=random_search", "--learning_rate=1"], "changes nothing"),
        ("train", ["--h=1e-5"], "h is not a flag of this experiment"),
        ("sweep", ["--learning_rates=1e-3,abc"], "comma-separated list of floats"),
        ("sweep", ["--regs=1e-3,-1"], "regs values must be >= 0"),
        ("sweep", ["--strategy=sgd"], "strategy must be one of"),
        ("gradcheck", ["--h=0"], "h must be in (0, 1)"),
        ("gradcheck", ["--num_checks=0"], "num_checks must be >= 1"),
        ("landscape", ["--grid_size=0"], "grid_size must be between 3 and"),
        ("step_size", ["--points_per_decade=0"], "points_per_decade must be >= 1"),
        ("step_size", ["--max_step_size=1e-12"], "must be finite and larger than"),
        ("reproduce", ["--num_tries=0"], "num_tries must be >= 1"),
        ("reproduce", ["--loss=svm"], "loss is not a flag of this experiment"),
    ],
)
def test_bad_values_are_refused_naming_the_field(experiment, args, message):
    with pytest.raises(ValueError, match=None) as e:
        parse(experiment, *args)
    assert message in str(e.value)


def test_unknown_enum_value_is_a_flag_error():
    with pytest.raises(flags.Error, match="strategy"):
        parse("train", "--strategy=bogus")


def test_given_flags_override_the_preset_and_the_rest_come_from_it():
    c = parse("train", "--dataset=digits", "--learning_rate=0.5")
    assert c.learning_rate == 0.5 and c.reg == 1e-3 and c.num_steps == 1500
    c = parse("train", "--dataset=cifar10", "--loss=softmax")
    assert (c.learning_rate, c.reg, c.schedule) == (5e-6, 500.0, "exponential")
    c = parse("train", "--dataset=cifar10", "--preset=assignment")
    assert (c.learning_rate, c.reg, c.schedule) == (1e-7, 2.5e4, "constant")
    c = parse("sweep", "--seed=3", "--num_seeds=2", "--regs=1,2")
    assert c.seeds == (3, 4) and c.regs == (1.0, 2.0)


def test_every_flag_name_is_defined_once():
    """absl would refuse a second definition at import; each flag is also a
    field of at least one experiment's config (or workdir / debug)."""
    ours = {
        name
        for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
        if module.startswith("experiments")
        for name in (f.name for f in module_flags)
    }
    fields = {f.name for c in CONFIGS.values() for f in dataclasses.fields(c)}
    assert ours - fields == {"workdir", "debug"}
    assert fields - ours == set()


@pytest.mark.parametrize(
    "experiment, args, message, code",
    [
        ("train", ["--dataset=cifar10", "--nodownload"], "cifar-10-batches-py", 1),
        ("train", ["stray_argument"], "unexpected arguments", 2),
        ("sweep", ["--regs=1e-3,-1"], "--regs values must be >= 0", 2),
        ("gradcheck", ["--h=0"], "--h must be in (0, 1)", 2),
        ("landscape", ["--example=100000"], "--example must be below", 2),
        ("step_size", ["--max_step_size=1e-12"], "larger than --min_step_size", 2),
        ("reproduce", ["--strategy=sgd"], "--strategy is not a flag", 2),
    ],
)
@pytest.mark.slow  # a subprocess each
def test_bad_input_is_one_line_and_nonzero(
    run_module, tmp_path, experiment, args, message, code
):
    out = tmp_path / "w"
    proc = run_module(experiment, *args, f"--workdir={out}", timeout=120)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]
    assert not out.exists()  # checked before anything is written


@pytest.mark.slow  # a subprocess each
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_what_matters_with_the_preset_values(run_module, flag):
    proc = run_module("train", "--dataset=cifar10", flag, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines()]
    names = [line.split("=")[0] for line in lines if line.startswith("--")]
    assert names[:6] == [
        "--dataset",
        "--data_dir",
        "--workdir",
        "--seed",
        "--loss",
        "--strategy",
    ]
    assert "--learning_rate=1e-06  [preset cifar10/svm/minibatch/linopt]" in lines
    assert "--dataset=cifar10  [given]" in lines
    assert "--population=-  [does not apply here]" in lines
