from dataclasses import dataclass, field

import pytest

from datagen.core.params import ParamGroup, UnknownKeyError, run_knob


@dataclass(frozen=True)
class Inner(ParamGroup):
    GROUP = "demo"
    size: int = 8


@dataclass(frozen=True)
class Weights(ParamGroup):
    GROUP = "demo.weights"
    a: float = 1.0


@dataclass(frozen=True)
class Demo(ParamGroup):
    GROUP = "demo"
    FLATTEN = ("inner",)
    inner: Inner = field(default_factory=Inner)
    weights: Weights = field(default_factory=Weights)
    rate: float = 0.5
    span: tuple[float, float] = (0.0, 1.0)
    names: tuple[str, ...] = ()
    mode: int | str = "auto"
    path: str | None = None
    on: bool = True
    workers: int = run_knob(0)

    def validate(self) -> None:
        if self.rate <= 0:
            raise ValueError("demo.rate must be positive")


def test_values_are_converted_to_their_field_types():
    p = Demo.from_params(
        {"size": 16, "weights": {"a": 2}, "rate": 1, "span": [0, 2], "names": ["x"], "mode": 3}
    )
    assert p == Demo(Inner(16), Weights(2.0), 1.0, (0.0, 2.0), ("x",), 3)
    assert isinstance(p.rate, float) and isinstance(p.weights.a, float)
    assert Demo.from_params({}) == Demo() and Demo.from_params(None) == Demo()
    assert Demo.from_params({"mode": "auto", "path": None}).mode == "auto"


def test_yaml_spellings_are_accepted():
    # PyYAML reads 1e-4 (no dot) as a string; a list param left empty in YAML is null
    p = Demo.from_params({"rate": "1e-4", "names": None, "weights": {"a": "5e-4"}})
    assert p.rate == 1e-4 and p.names == () and p.weights.a == 5e-4
    with pytest.raises(ValueError, match=r"demo\.names must be a list of strings, not 3"):
        Demo.from_params({"names": 3})


def test_a_missing_group_is_an_error_naming_the_groups():
    from datagen.core.params import group

    assert group({"pose": None, "fits": {"iterations": 2}}, "pose") == {}
    with pytest.raises(KeyError, match=r"no 'degrade' group \(it has \['fits'\]\)"):
        group({"degrde": 1, "fits": {}}, "degrade")


def test_unknown_keys_and_wrong_types_name_the_key():
    with pytest.raises(UnknownKeyError, match=r"'demo' group: unknown key\(s\) \['rat'\]"):
        Demo.from_params({"rat": 1})
    with pytest.raises(UnknownKeyError, match=r"'demo.weights' group: unknown key\(s\) \['b'\]"):
        Demo.from_params({"weights": {"b": 1}})
    with pytest.raises(ValueError, match=r"demo\.span must be \[lo, hi\], not \[1\]"):
        Demo.from_params({"span": [1]})
    with pytest.raises(ValueError, match=r"demo\.on must be true or false, not 'yes'"):
        Demo.from_params({"on": "yes"})
    with pytest.raises(ValueError, match=r"demo\.size must be an integer, not 2\.5"):
        Demo.from_params({"size": 2.5})
    with pytest.raises(ValueError, match=r"demo\.rate must be a number"):
        Demo.from_params({"rate": "fast"})
    with pytest.raises(ValueError, match="demo.rate must be positive"):
        Demo.from_params({"rate": 0})
    with pytest.raises(ValueError, match="must be a group of keys"):
        Demo.from_params([1, 2])


def test_run_knobs_stay_out_of_the_outputs():
    assert Demo.accepted_keys() == {
        "size", "weights", "rate", "span", "names", "mode", "path", "on", "workers"
    }  # fmt: skip
    assert Demo.run_keys() == {"workers"}
    a, b = Demo.from_params({"workers": 1}), Demo.from_params({"workers": 2})
    assert a != b and a.outputs() == b.outputs()
    assert "workers" not in a.outputs() and a.outputs()["inner"] == {"size": 8}
