#!/usr/bin/env python3
"""Converts a PyTorch ResNet-50 checkpoint (any source of paper-protocol.md section 3) into a
medtl HDF5 weight file (docs/weights.md) with torchvision key names.

    convert_torch_checkpoint.py CHECKPOINT OUT.h5 [--keep-fc] [--source TEXT]

Steps (the reference pipeline, download_and_prepare_models.py, made explicit):
  1. torch.load on the CPU; unwrap 'state_dict', 'model' or 'resnet' while the object is not yet
     a flat dict of tensors.
  2. Strip per key the longest of the prefixes 'module.encoder_q.', 'module.encoder.', 'module.'
     (MoCo/PCL, InsDis/PIRL/InfoMin, SwAV/DeepCluster/SeLa/CheXpert/DataParallel).
  3. Drop keys containing fc, projection, prototypes, head, jigsaw, encoder_k, queue, linear or
     classifier. With --keep-fc, 'fc.weight'/'fc.bias' are kept (e.g. iNat2021's 10000-class fc)
     and the classification engine's Sequential head 'fc.0.weight'/'fc.0.bias' becomes 'fc.*'.
  4. Add num_batches_tracked = 0 for BatchNorms whose checkpoint predates it (torchvision's
     resnet50-19c8e357.pth), then require exactly torchvision ResNet-50's backbone keys and
     shapes (strict load_state_dict into torchvision.models.resnet50 with fc removed).
  5. Write OUT.h5 atomically (variant=torchvision, RGB, ImageNet mean/std, value_scale 1).
Prints what was unwrapped, stripped, dropped and added. Exit status 0 on success, 1 on error.
Only convert checkpoints you trust: torch.load unpickles arbitrary objects.
"""
import argparse
import collections
import os
import sys

import numpy as np

PREFIXES = ("module.encoder_q.", "module.encoder.", "module.")  # longest first
DROP_PATTERNS = ("fc", "projection", "prototypes", "head", "jigsaw", "encoder_k", "queue", "linear", "classifier")
WRAPPERS = ("state_dict", "model", "resnet")


class ConversionError(Exception):
    pass


def import_deps():
    try:
        import torch
        import torchvision
        import h5py
    except ImportError as e:
        raise ConversionError(f"{e}; this converter needs torch, torchvision and h5py (Debian: python3-torch, "
                              "python3-torchvision, python3-h5py; run it with /usr/bin/python3)")
    return torch, torchvision, h5py


def is_tensor_dict(obj, torch):
    return isinstance(obj, dict) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def unwrap(ckpt, torch, log):
    obj = ckpt
    for _ in range(3):
        if is_tensor_dict(obj, torch):
            return obj
        if not isinstance(obj, dict):
            raise ConversionError(f"checkpoint holds a {type(obj).__name__}, not a dict of tensors (a pickled "
                                  "whole model? save its state_dict() instead)")
        wrapper = next((w for w in WRAPPERS if w in obj and isinstance(obj[w], dict)), None)
        if wrapper is None:
            raise ConversionError(f"checkpoint is a dict with keys {sorted(obj)[:10]} but none of {WRAPPERS} "
                                  "holds the weights")
        log.append(f"unwrapped '{wrapper}' (other top-level keys: {sorted(k for k in obj if k != wrapper)})")
        obj = obj[wrapper]
    if not is_tensor_dict(obj, torch):
        raise ConversionError("no flat dict of tensors found after unwrapping")
    return obj


def strip_prefix(key):
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):], prefix
    return key, ""


def group_counts(keys):
    """'encoder_k.* (320), queue, queue_ptr' style summary."""
    groups = collections.OrderedDict()
    for k in keys:
        groups.setdefault(k.split(".")[0], []).append(k)
    parts = []
    for head, members in groups.items():
        parts.append(members[0] if len(members) == 1 and members[0] == head else f"{head}.* ({len(members)})")
    return ", ".join(parts)


def select_keys(state, keep_fc, log):
    """Prefix stripping and dropping. Returns (OrderedDict key -> tensor, dropped original keys)."""
    stripped_counts = collections.Counter()
    out = collections.OrderedDict()
    dropped = []
    for raw_key, tensor in state.items():
        key, prefix = strip_prefix(raw_key)
        stripped_counts[prefix] += 1
        if keep_fc and key in ("fc.0.weight", "fc.0.bias"):
            key = "fc." + key.split(".")[-1]
        if keep_fc and key in ("fc.weight", "fc.bias"):
            if key in out:
                raise ConversionError(f"two fc heads after renaming ('{raw_key}' and an earlier one)")
            out[key] = tensor
            continue
        if any(p in key for p in DROP_PATTERNS):
            dropped.append(key)
            continue
        if key in out:
            raise ConversionError(f"two checkpoint keys map to '{key}' after prefix stripping (one is '{raw_key}')")
        out[key] = tensor
    for prefix, n in stripped_counts.items():
        if prefix:
            log.append(f"stripped '{prefix}' from {n} keys")
    if dropped:
        log.append(f"dropped {len(dropped)} keys: {group_counts(dropped)}")
    return out, dropped


def reference_backbone(torchvision):
    model = torchvision.models.resnet50()
    del model.fc
    return model


def verify_backbone(selected, torch, torchvision, log):
    """Returns the backbone in torchvision state_dict order, after a strict check."""
    model = reference_backbone(torchvision)
    reference = model.state_dict()
    added = []
    for key in reference:
        if key.endswith("num_batches_tracked") and key not in selected:
            bn_prefix = key[: -len("num_batches_tracked")]
            if bn_prefix + "running_mean" in selected:
                selected[key] = torch.tensor(0, dtype=torch.int64)
                added.append(key)
    if added:
        log.append(f"added num_batches_tracked = 0 for {len(added)} BatchNorms (checkpoint predates it)")
    backbone = {k: v for k, v in selected.items() if not k.startswith("fc.")}
    missing = [k for k in reference if k not in backbone]
    unexpected = [k for k in backbone if k not in reference]
    wrong = [f"{k}: checkpoint {tuple(backbone[k].shape)} vs resnet50 {tuple(reference[k].shape)}"
             for k in reference if k in backbone and tuple(backbone[k].shape) != tuple(reference[k].shape)]
    if missing or unexpected or wrong:
        raise ConversionError("the checkpoint is not a torchvision ResNet-50 backbone after conversion:\n"
                              f"  missing ({len(missing)}): {missing}\n  unexpected ({len(unexpected)}): {unexpected}\n"
                              f"  shape mismatch ({len(wrong)}): {wrong}")
    model.load_state_dict(backbone, strict=True)  # the reference pipeline's own check
    return collections.OrderedDict((k, backbone[k]) for k in reference)


def write_weights_h5(h5py, path, tensors, attrs):
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


def to_numpy(tensor, torch):
    t = tensor.detach().cpu()
    if t.is_floating_point():
        return np.ascontiguousarray(t.to(torch.float32).numpy())
    return np.ascontiguousarray(t.to(torch.int64).numpy())


def convert(checkpoint, out, keep_fc=False, source=None):
    torch, torchvision, h5py = import_deps()
    log = []
    if not os.path.isfile(checkpoint):
        raise ConversionError(f"checkpoint not found: {checkpoint}")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConversionError(f"output directory {out_dir} does not exist")
    try:
        ckpt = torch.load(checkpoint, map_location="cpu")
    except Exception as e:  # torch raises many types for a bad file
        raise ConversionError(f"torch.load('{checkpoint}') failed: {e}")
    state = unwrap(ckpt, torch, log)
    selected, _ = select_keys(state, keep_fc, log)
    backbone = verify_backbone(selected, torch, torchvision, log)
    tensors = collections.OrderedDict((k, to_numpy(v, torch)) for k, v in backbone.items())
    num_classes = 0
    if keep_fc:
        if "fc.weight" not in selected or "fc.bias" not in selected:
            raise ConversionError("--keep-fc: the checkpoint has no fc.weight/fc.bias (nor fc.0.*) to keep")
        w, b = selected["fc.weight"], selected["fc.bias"]
        if w.dim() != 2 or w.shape[1] != 2048 or tuple(b.shape) != (w.shape[0],):
            raise ConversionError(f"--keep-fc: fc.weight {tuple(w.shape)} / fc.bias {tuple(b.shape)} is not a "
                                  "Linear(2048, C)")
        num_classes = int(w.shape[0])
        tensors["fc.weight"] = to_numpy(w, torch)
        tensors["fc.bias"] = to_numpy(b, torch)
        log.append(f"kept fc: {num_classes} classes")
    attrs = collections.OrderedDict([
        ("format", "medtl-weights"), ("format_version", np.int64(1)),
        ("architecture", "resnet50"), ("variant", "torchvision"), ("num_classes", np.int64(num_classes)),
        ("channel_order", "RGB"), ("mean", np.array([0.485, 0.456, 0.406], dtype=np.float64)),
        ("std", np.array([0.229, 0.224, 0.225], dtype=np.float64)), ("value_scale", np.float64(1.0)),
        ("bn_eps", np.float64(1e-5)),
        ("source", source or f"{os.path.basename(checkpoint)} converted by tools/convert_torch_checkpoint.py"),
    ])
    write_weights_h5(h5py, out, tensors, attrs)
    return tensors, log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="PyTorch checkpoint (.pth, .pth.tar)")
    parser.add_argument("out", help="output .h5 file")
    parser.add_argument("--keep-fc", action="store_true",
                        help="keep the classifier (fc.* or the engine's fc.0.*) and record num_classes")
    parser.add_argument("--source", help="text for the 'source' attribute (default: the checkpoint's name)")
    args = parser.parse_args(argv)
    try:
        tensors, log = convert(args.checkpoint, args.out, args.keep_fc, args.source)
    except (ConversionError, OSError) as e:
        print(f"convert_torch_checkpoint: error: {e}", file=sys.stderr)
        return 1
    for line in log:
        print(f"convert_torch_checkpoint: {line}")
    values = sum(a.size for k, a in tensors.items() if not k.endswith("num_batches_tracked"))
    print(f"convert_torch_checkpoint: wrote {args.out} ({len(tensors)} tensors, {values:,} values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
