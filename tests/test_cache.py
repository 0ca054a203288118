"""Tests of compute.cache: memoize hits and misses, and the fingerprints that make up its keys."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from compute import cache


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    """A cache directory of its own for one test (get_cache opens one cache per pid and directory)."""
    directory = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(directory))
    return directory


def counting(function):
    """``function`` memoized, with ``.calls`` counting how often its body really ran."""
    calls = []

    @functools.wraps(function)  # keeps the signature, so defaults and argument names reach the key
    def body(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    # memoize keys on the qualified name; give every counted function its own.
    body.__qualname__ = f"counting.{function.__qualname__}"
    wrapped = cache.memoize(body)
    wrapped.calls = calls
    return wrapped


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_cache_dir_follows_the_environment_variable(fresh_cache):
    assert cache.cache_dir() == fresh_cache
    assert cache.get_cache().directory == str(fresh_cache / "results")


def test_same_call_twice_computes_once_and_returns_identical_arrays(fresh_cache):
    def features(values, scale=2.0):
        return np.asarray(values, dtype=np.float64) * scale + np.random.default_rng().random(len(values))

    cached = counting(features)
    first = cached([1.0, 2.0, 3.0])
    second = cached([1.0, 2.0, 3.0])
    # The body adds fresh noise, so equality proves the second result came from the cache.
    assert len(cached.calls) == 1
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float64


def test_two_threads_asking_for_one_key_at_once_compute_it_once(fresh_cache):
    """The scatter and the neighbours of a new layer both need its features: the second waits for the first."""
    import threading
    import time

    def slow(value):
        time.sleep(0.5)
        return np.full(3, value) + np.random.default_rng().random(3)

    cached = counting(slow)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cached(7.0))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cached.calls) == 1 and len(results) == 3
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])  # the one computation's noise, thrice


def test_a_failed_computation_leaves_the_key_to_the_next_caller(fresh_cache):
    attempts = []

    def flaky(value):
        attempts.append(value)
        if len(attempts) == 1:
            raise RuntimeError("cancelled")
        return value * 2

    cached = counting(flaky)
    with pytest.raises(RuntimeError):
        cached(3)
    assert cached(3) == 6 and len(attempts) == 2


def test_defaults_and_keywords_give_the_same_key_as_positional_arguments(fresh_cache):
    def scaled(x, scale=2.0):
        return x * scale

    cached = counting(scaled)
    assert cached(3.0) == 6.0
    assert cached(3.0, 2.0) == 6.0
    assert cached(x=3.0, scale=2.0) == 6.0
    assert len(cached.calls) == 1
    assert cached(3.0, scale=3.0) == 9.0
    assert len(cached.calls) == 2


def test_different_arguments_miss(fresh_cache):
    cached = counting(lambda x: x + 1)
    assert [cached(1), cached(2), cached(1), cached(2)] == [2, 3, 2, 3]
    assert len(cached.calls) == 2


def test_different_functions_with_the_same_arguments_do_not_share_entries(fresh_cache):
    def add_one(x):
        return x + 1

    def double(x):
        return x * 2

    assert counting(add_one)(5) == 6
    assert counting(double)(5) == 10


def test_results_persist_per_cache_directory(tmp_path, monkeypatch):
    cached = counting(lambda x: x * 10)
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "a"))
    assert cached(1) == 10
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "b"))
    assert cached(1) == 10
    assert len(cached.calls) == 2  # a new directory is a new, empty cache
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "a"))
    assert cached(1) == 10
    assert len(cached.calls) == 2  # back in the first directory: a hit
    assert (tmp_path / "a" / "results").is_dir()


def test_in_place_weight_change_changes_the_fingerprint_and_misses(fresh_cache):
    model = tiny_model()
    inputs = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))

    def outputs(model, inputs):
        with torch.no_grad():
            return model(inputs)

    cached = counting(outputs)
    before = cache.model_fingerprint(model)
    original = model[0].weight.detach().clone()
    first = cached(model, inputs)
    assert len(cached.calls) == 1
    with torch.no_grad():
        model[0].weight.add_(1)
    assert cache.model_fingerprint(model) != before
    second = cached(model, inputs)
    assert len(cached.calls) == 2
    assert not torch.equal(first, second)
    torch.testing.assert_close(second, outputs(model, inputs))
    # Writing the old values back restores the old fingerprint, and the first entry hits again.
    with torch.no_grad():
        model[0].weight.copy_(original)
    assert cache.model_fingerprint(model) == before
    torch.testing.assert_close(cached(model, inputs), first)
    assert len(cached.calls) == 2


def test_load_state_dict_of_other_weights_misses(fresh_cache):
    model, other = tiny_model(0), tiny_model(1)
    cached = counting(lambda model: float(sum(p.detach().sum() for p in model.parameters())))
    first = cached(model)
    fingerprint = cache.model_fingerprint(model)
    model.load_state_dict(other.state_dict())
    assert cache.model_fingerprint(model) != fingerprint
    assert cache.model_fingerprint(model) == cache.model_fingerprint(other)
    second = cached(model)
    assert len(cached.calls) == 2
    assert second != first
    assert second == pytest.approx(float(sum(p.detach().sum() for p in other.parameters())))


def test_models_with_identical_weights_share_a_fingerprint_and_an_entry(fresh_cache):
    model, copy = tiny_model(0), tiny_model(0)
    assert model is not copy
    assert cache.model_fingerprint(model) == cache.model_fingerprint(copy)
    assert cache.model_fingerprint(model) != cache.model_fingerprint(tiny_model(1))
    cached = counting(lambda model: model[0].weight.sum().item())
    assert cached(model) == cached(copy)
    assert len(cached.calls) == 1


def test_model_fingerprint_includes_buffers_and_the_class():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", torch.ones(3))

    class Other(Scaled):
        pass

    first, second = Scaled(), Scaled()
    assert cache.model_fingerprint(first) == cache.model_fingerprint(second)
    second.scale.mul_(2)
    assert cache.model_fingerprint(first) != cache.model_fingerprint(second)
    assert cache.model_fingerprint(Scaled()) != cache.model_fingerprint(Other())


def test_tensors_fingerprint_by_content():
    a = torch.arange(6, dtype=torch.float32)
    b = torch.arange(6, dtype=torch.float32)  # another object, same content
    assert cache.tensor_fingerprint(a) == cache.tensor_fingerprint(b)
    assert cache.fingerprint(a) == cache.fingerprint(b)
    assert cache.tensor_fingerprint(a) != cache.tensor_fingerprint(a + 1)
    # Same bytes, other shape or dtype: different content.
    assert cache.tensor_fingerprint(a) != cache.tensor_fingerprint(a.reshape(2, 3))
    assert cache.tensor_fingerprint(a) != cache.tensor_fingerprint(a.view(torch.int32))
    # A non-contiguous view fingerprints like its contiguous copy.
    matrix = torch.arange(12.0).reshape(3, 4)
    assert cache.tensor_fingerprint(matrix.t()) == cache.tensor_fingerprint(matrix.t().contiguous())
    # requires_grad does not matter, values do.
    assert cache.tensor_fingerprint(a.clone().requires_grad_()) == cache.tensor_fingerprint(a)


def test_arrays_fingerprint_by_content():
    a = np.arange(6.0)
    assert cache.fingerprint(a) == cache.fingerprint(np.arange(6.0))
    assert cache.fingerprint(a) != cache.fingerprint(np.arange(6.0) + 1)
    assert cache.fingerprint(a) != cache.fingerprint(a.reshape(2, 3))
    assert cache.fingerprint(a[::2]) == cache.fingerprint(np.ascontiguousarray(a[::2]))


def test_equal_tensor_arguments_hit(fresh_cache):
    cached = counting(lambda t: t * 2)
    first = cached(torch.arange(4.0))
    second = cached(torch.arange(4.0))
    cached(torch.arange(4.0) + 1)
    assert len(cached.calls) == 2
    torch.testing.assert_close(first, second)


def test_plain_values_and_containers_fingerprint_by_value():
    assert cache.fingerprint([1, "a", None]) == cache.fingerprint([1, "a", None])
    assert cache.fingerprint([1, 2]) != cache.fingerprint([2, 1])
    assert cache.fingerprint({"b": 1, "a": 2}) == cache.fingerprint({"a": 2, "b": 1})
    assert cache.fingerprint("1") != cache.fingerprint(1)
    assert cache.fingerprint(1.5) != cache.fingerprint(2.5)
    assert cache.fingerprint((torch.ones(2),)) == cache.fingerprint([torch.ones(2)])


def test_objects_with_their_own_fingerprint_use_it():
    class Data:
        def __init__(self, fingerprint):
            self.fingerprint = fingerprint

    assert cache.fingerprint(Data("x")) == cache.fingerprint(Data("x"))
    assert cache.fingerprint(Data("x")) != cache.fingerprint(Data("y"))


def test_progress_and_batch_size_are_ignored_in_the_key(fresh_cache):
    def work(x, batch_size=None, progress=None):
        if progress:
            progress(1.0, "done")
        return x * 3

    cached = counting(work)
    reports = []
    assert cached(2, batch_size=1) == 6
    assert cached(2, batch_size=64, progress=lambda fraction, text: reports.append(fraction)) == 6
    assert cached(2) == 6
    assert len(cached.calls) == 1
    assert cached.key(2, batch_size=1) == cached.key(2, batch_size=99, progress=print)
    assert cached.key(2) != cached.key(3)


def test_unsupported_argument_types_raise_type_error(fresh_cache):
    cached = counting(lambda x: x)
    with pytest.raises(TypeError, match="object"):
        cached(object())
    with pytest.raises(TypeError):
        cached([1, {2, 3}])  # a set inside a list
    assert cached.calls == []
    with pytest.raises(TypeError):
        cache.fingerprint(lambda: None)


def test_uncached_is_the_plain_function(fresh_cache):
    cached = counting(lambda x: x + 1)
    assert cached.uncached(1) == 2
    assert cached.uncached(1) == 2
    assert len(cached.calls) == 2  # the counter sits in the plain function too
    assert cached(1) == 2
    assert len(cached.calls) == 3


# ---------------------------------------------------------------------------------------------- code versions

def _write_module(path, body: str, helper: str = "return x + 1") -> None:
    path.write_text(
        "from compute.cache import memoize\n\n"
        f"def helper(x):\n    {helper}\n\n"
        "CALLS = []\n\n"
        "@memoize\n"
        f"def compute_it(x):\n    CALLS.append(x)\n    {body}\n"
    )


def _import_fresh(directory, name):
    import importlib
    import sys

    sys.path.insert(0, str(directory))
    try:
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))


def test_a_changed_function_body_misses_the_cache(fresh_cache, tmp_path):
    module_file = tmp_path / "changing_algorithm.py"
    _write_module(module_file, "return x * 2")
    module = _import_fresh(tmp_path, "changing_algorithm")
    assert module.compute_it(3) == 6 and module.compute_it(3) == 6
    assert module.CALLS == [3]  # the second call came from the cache

    _write_module(module_file, "return x * 20  # a new algorithm")
    module = _import_fresh(tmp_path, "changing_algorithm")
    assert module.compute_it(3) == 60
    assert module.CALLS == [3]  # reload made a new list: the body ran once, not the old cached 6

    _write_module(module_file, "return x * 2")  # back to the first version: its entry is still there
    module = _import_fresh(tmp_path, "changing_algorithm")
    assert module.compute_it(3) == 6 and module.CALLS == []


def test_a_changed_helper_it_calls_misses_the_cache(fresh_cache, tmp_path):
    module_file = tmp_path / "changing_helper.py"
    _write_module(module_file, "return helper(x)")
    module = _import_fresh(tmp_path, "changing_helper")
    assert module.compute_it(3) == 4
    _write_module(module_file, "return helper(x)", helper="return x + 100")
    module = _import_fresh(tmp_path, "changing_helper")
    assert module.compute_it(3) == 103 and module.CALLS == [3]


def test_code_version_reaches_compute_functions_called_through_tables_and_modules():
    from compute import attribution, embedding

    pieces: list[str] = []
    original = cache._digest
    try:
        cache._digest = lambda *chunks: pieces.extend(chunks[0].decode().split("\n")) or original(*chunks)
        cache.code_version(attribution.attribution_map.uncached)
    finally:
        cache._digest = original
    functions = {line.split()[1] for line in pieces if line.startswith("function ")}
    # METHODS' entries, the helpers they call in another module, and the layer capture module.
    for name in ("compute.attribution.occlusion_explain", "compute.gradients.smoothgrad",
                 "compute.passes.evaluate", "compute.device.batch_size_for", "compute.layers.capture"):
        assert name in functions, name
    assert cache.code_version(embedding.layer_embedding.uncached) != cache.code_version(attribution.attribution_map.uncached)
    # Computed the same way twice (a stable key across processes needs a deterministic version).
    assert cache.code_version(attribution.attribution_map.uncached) == cache.code_version(attribution.attribution_map.uncached)


CODE_VERSIONS_OF_EVERY_CACHED_FUNCTION = """
import json, sys
import copyreg
import compute.jobs.table  # every family module, so every memoized function is imported
from compute import cache

def versions():
    found = {}
    for name, module in sorted(sys.modules.items()):
        if name.startswith("compute."):
            for attribute, value in sorted(vars(module).items()):
                if callable(value) and hasattr(value, "uncached") and getattr(value, "__module__", "") == name:
                    found[f"{name}.{attribute}"] = cache._code_version(value.uncached)
    return found

fresh = versions()
# What a process's work leaves on classes: storing an instance (pickle) adds __slotnames__ to its class.
for name, module in list(sys.modules.items()):
    if name.startswith("compute."):
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                copyreg._slotnames(value)
assert versions() == fresh, "a code version changed with the process's state"
print(json.dumps(fresh))
"""


def test_every_cached_functions_code_version_is_the_same_in_every_process():
    # A key that differs between processes is a cache that never hits after a restart, and a compute process that
    # never finds what the server or a test stored. repr(dataclasses.MISSING) (a memory address) once did that, and
    # a class's __slotnames__, which appears once an instance has been pickled.
    import json
    import os
    import subprocess
    import sys

    def versions(hash_seed: str) -> dict:
        output = subprocess.run([sys.executable, "-c", CODE_VERSIONS_OF_EVERY_CACHED_FUNCTION], check=True,
                                capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        return json.loads(output.stdout.strip().splitlines()[-1])

    first, second = versions("1"), versions("2")
    assert len(first) >= 10 and "compute.embedding.layer_reduction" in first
    assert first == second
