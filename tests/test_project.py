"""Project-wide rules: dvc.yaml covers what each stage imports, names its params by key and uses
one name per stage; params.yaml and the code's defaults agree; every import is declared."""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from datagen.core.code import MODULE_DATA, import_closure
from datagen.core.params import load_params
from datagen.core.seeding import STAGE_IDS
from tests.helpers import REPO


def _substitute(tree, item: str):
    if isinstance(tree, str):
        return tree.replace("${item}", item)
    if isinstance(tree, list):
        return [_substitute(v, item) for v in tree]
    if isinstance(tree, dict):
        return {_substitute(k, item): _substitute(v, item) for k, v in tree.items()}
    return tree


def dvc_stages() -> dict:
    """dvc.yaml's stages, ``foreach`` groups expanded to ``name@item`` as DVC names them."""
    out = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in stage:
            for item in stage["foreach"]:
                out[f"{name}@{item}"] = _substitute(stage["do"], item)
        else:
            out[name] = stage
    return out


def base_name(name: str) -> str:
    return name.split("@")[0]


def param_classes() -> dict:
    from datagen import rain
    from datagen.core.shards import ShardsParams
    from datagen.face.degrade import DegradeParams
    from datagen.face3d.relight import RelightParams
    from datagen.stages.faces import FacesParams
    from datagen.stages.fits import FitsParams
    from datagen.stages.pairs_illumination import IlluminationParams
    from datagen.stages.pairs_occlusion import OcclusionParams
    from datagen.stages.pairs_pose import PoseParams
    from models.train.cpgan import CPGANParams
    from models.train.prouigan import ProUIGANParams
    from models.train.recipes import BaselineParams
    from models.train.vividgan import VividGANParams

    classes = (
        BaselineParams,
        CPGANParams,
        VividGANParams,
        ProUIGANParams,
        ShardsParams,
        FacesParams,
        DegradeParams,
        OcclusionParams,
        FitsParams,
        PoseParams,
        RelightParams,
        rain.RainParams,
        IlluminationParams,
    )
    return {c.GROUP: c for c in classes}


def stage_module(stage: dict) -> str:
    m = re.fullmatch(r"python -m ([\w.]+)(?: --[\w-]+ [\w-]+)*", stage["cmd"])
    assert m, f"stage command {stage['cmd']!r} is not `python -m <module>`"
    return m.group(1)


def dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def uncovered(module: str, deps: list[str]) -> list[str]:
    """Files in ``module``'s import closure (and data those files read) that no dep covers."""
    need = [p.relative_to(REPO).as_posix() for p in import_closure(module, REPO)]
    need += [d for src, data in MODULE_DATA.items() if src in need for d in data]
    return [f for f in need if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_stage_deps_cover_its_import_closure(name):
    stage = dvc_stages()[name]
    module, deps = stage_module(stage), dep_paths(stage)
    assert uncovered(module, deps) == [], f"dvc.yaml stage {name} misses deps"
    # the check has teeth: dropping any code dep leaves something uncovered
    for d in deps:
        if d.startswith(("datagen/", "models/", "pipelines/")):
            assert uncovered(module, [x for x in deps if x != d]), f"{d} is not needed by {name}"


def test_one_name_per_stage():
    for name, stage in dvc_stages().items():
        module = stage_module(stage).removeprefix("pipelines.")
        base = base_name(name)
        # evaluate_bicubic, evaluate_baseline: the evaluate stage, one group per method
        assert base == module or base.startswith(f"{module}_"), (name, module)
        assert (REPO / "pipelines" / f"{module}.py").is_file()
        logic = [f"{pkg}/stages/{module}.py" for pkg in ("datagen", "models")]
        assert any((REPO / f).is_file() for f in logic), f"no stage module for {name}"
        assert f"pipelines/{module}.py" in dep_paths(stage)
        assert any(f in dep_paths(stage) for f in logic)
        metrics = [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]
        if "@" in name:  # one metrics file per item, named after the stage and the item
            item = name.split("@")[1]
            assert len(metrics) == 1 and item in metrics[0], (name, metrics)
        elif metrics:
            assert metrics == [f"metrics/{name}.json"]
    assert set(STAGE_IDS) <= set(dvc_stages()), "seed ids are keyed by stage name"


def groups_read(name: str) -> set[str]:
    """The param groups a stage's entry point reads (``group(params, "<name>")``), and
    ``seed`` when it reads the seed."""
    src = (REPO / "pipelines" / f"{name}.py").read_text()
    if 'params.get("seed"' not in src and "group(params" not in src:
        return set()
    out = set(re.findall(r'group\(params, "(\w+)"\)', src))
    return out | ({"seed"} if 'params.get("seed"' in src else set())


def expected_keys(group_name: str, values: dict, cls) -> set[str]:
    """``group.key`` for every non-run knob of a group; a nested group with run knobs of its
    own (``baseline.train``) is listed key by key."""
    import typing

    from datagen.core.params import ParamGroup

    hints = typing.get_type_hints(cls)
    out = set()
    for k, v in values.items():
        if k in cls.run_keys():
            continue
        sub = hints.get(k)
        if isinstance(sub, type) and issubclass(sub, ParamGroup) and sub.run_keys():
            out |= expected_keys(f"{group_name}.{k}", v, sub)
        else:
            out.add(f"{group_name}.{k}")
    return out


@pytest.mark.parametrize("name", sorted(dvc_stages()))
def test_params_are_listed_by_key_without_run_knobs(name):
    params, classes = load_params(REPO / "params.yaml"), param_classes()
    listed = dvc_stages()[name].get("params", [])
    assert all(isinstance(k, str) for k in listed), "params are listed by key, not by file"
    assert all("." in k or k == "seed" for k in listed), "groups are listed key by key"
    groups = {k.split(".")[0] for k in listed}
    module = stage_module(dvc_stages()[name]).removeprefix("pipelines.")
    assert groups == groups_read(module), f"{name} lists {groups}, reads {groups_read(module)}"
    for g in groups - {"seed"}:
        want = expected_keys(g, params[g], classes[g])
        have = {k for k in listed if k.startswith(f"{g}.")}
        assert have == want, f"{name}: {g} keys listed {sorted(have)}, expected {sorted(want)}"
    for k in listed:
        node = params
        for part in k.split("."):
            assert isinstance(node, dict) and part in node, f"{k} not in params.yaml"
            node = node[part]


def test_params_yaml_parses_through_every_group_and_equals_the_defaults():
    params, classes = load_params(REPO / "params.yaml"), param_classes()
    groups = {k for k, v in params.items() if isinstance(v, dict)}
    assert groups == set(classes), "every params.yaml group has a ParamGroup class"
    for g, cls in classes.items():
        assert set(params[g]) == cls.accepted_keys(), f"params.yaml '{g}' lists every knob once"
        assert cls.from_params(params[g]) == cls(), f"params.yaml '{g}' differs from {cls}()"


def test_rain_paper_recipe_is_a_named_variant():
    from datagen import rain

    paper = rain.RainParams.paper()
    paper.validate()
    assert paper != rain.RainParams()
    assert paper.model.output == "image" and paper.model.decoder_width == 1.0
    assert paper.weights.pixel == 0 and paper.weights.paired == 0 and paper.batch == 8


# ---------------------------------------------------------------- declared imports


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """Distribution names per section of pyproject.toml: runtime, and each dependency group."""
    py = tomllib.loads((REPO / "pyproject.toml").read_text())

    def names(reqs):
        return {_norm(re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0]) for r in reqs}

    out = {"runtime": names(py["project"]["dependencies"])}
    for g, reqs in py.get("dependency-groups", {}).items():
        out[g] = names(reqs)
    return out


def third_party_imports(files: list[Path]) -> dict[str, str]:
    """Top-level third-party module -> a file importing it (any depth: lazy imports count)."""
    own = {"datagen", "models", "pipelines", "tests"}
    out: dict[str, str] = {}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    out.setdefault(top, f.relative_to(REPO).as_posix())
    return out


@functools.lru_cache(maxsize=1)
def module_distributions() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that provide it: ``top_level.txt`` where
    it names the module, else the distributions whose RECORD lists the module's files (dlib-bin
    names only its extension in ``top_level.txt``)."""
    out = {m: set(d) for m, d in metadata.packages_distributions().items()}
    for dist in metadata.distributions():
        record = dist.read_text("RECORD") or ""
        tops = {line.split("/", 1)[0] for line in record.splitlines() if "/" in line.split(",")[0]}
        name = dist.metadata["Name"]
        for top in tops:
            if not top.endswith((".dist-info", ".data")):
                out.setdefault(top, set()).add(name)
    return out


def undeclared(files: list[Path], allowed: set[str]) -> list[str]:
    """``module (file)`` for each imported module whose distribution is not in ``allowed``."""
    dists = module_distributions()
    bad = []
    for mod, where in sorted(third_party_imports(files).items()):
        names = {_norm(d) for d in dists.get(mod, [])}
        if not names & allowed:
            bad.append(f"{mod} ({where}; distributions {sorted(names) or 'none installed'})")
    return bad


def _py(*folders: str, exclude: tuple[str, ...] = ()) -> list[Path]:
    files = [p for f in folders for p in (REPO / f).rglob("*.py")]
    return [p for p in files if not any(p.is_relative_to(REPO / e) for e in exclude)]


def test_runtime_imports_are_declared():
    decl = declared()
    runtime = _py("datagen", "models", "pipelines", exclude=("datagen/bench", "datagen/reports"))
    assert undeclared(runtime, decl["runtime"]) == []
    # and the check has teeth: without scikit-image declared, align.py's import is reported
    missing = undeclared(runtime, decl["runtime"] - {"scikit-image"})
    assert any(m.startswith("skimage (datagen/face/align.py") for m in missing)


def test_benchmark_report_and_test_imports_are_declared():
    decl = declared()
    tools = _py("datagen/bench", "datagen/reports")
    assert undeclared(tools, decl["runtime"] | decl["bench"]) == []
    assert undeclared(_py("tests"), decl["runtime"] | decl["dev"] | decl["bench"]) == []
    # benchmark-only packages stay out of the runtime dependencies
    assert "albumentations" not in decl["runtime"] and "albumentations" in decl["bench"]
    py = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert set(py["tool"]["uv"]["default-groups"]) >= {"dev", "bench"}, "`uv sync` installs them"
