"""What each tap of a classification backbone is, in torchvision's modules.

The tap *names* and shapes come from exits_ref.classifier_taps (which the
converters check exit configs against, and whose list tests/train checks the C
builders accept exactly); this module says which tensor of torchvision's model a
name stands for (docs/model-format.md 6.2), as forward hooks. The PyTorch
reference of the tests (tests/reference/classifier_ref.py) and the exit trainer
(models/train/) both read taps through `tap_hooks`, so what an exit is trained
on is what the engine feeds it.
"""
import torch
import torch.nn.functional as F


def module_at(model, path):
    """The submodule at a dotted path (`layer2.0.bn2`, `features.denseblock1`)."""
    m = model
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def tap_hooks(cfg, model, tap, store, detach=True):
    """Registers the forward hooks that put tap `tap` (a name or an alias) of
    torchvision `model` into store[tap]; returns the hook handles."""
    def keep(t):
        return t.detach().clone() if detach else t

    def save(fn=lambda t: t):
        def hook(_mod, _inp, out):
            store[tap] = fn(keep(out))
        return hook

    arch = cfg["arch"]
    if arch == "resnet152":
        if tap == "stem":
            return [model.maxpool.register_forward_hook(save())]
        parts = tap.split(".")
        if len(parts) == 3:  # layerK.I.convN: after bnN and the ReLU
            bn = module_at(model, f"{parts[0]}.{parts[1]}.bn{parts[2][-1]}")
            return [bn.register_forward_hook(save(F.relu))]
        return [module_at(model, tap).register_forward_hook(save())]
    if arch == "densenet201":
        if tap == "features.norm5":
            return [model.features.norm5.register_forward_hook(save(F.relu))]
        if ".denselayer" in tap:
            # the block's input and the new channels of layers 1..J, concatenated
            blk_name, layer = tap.rsplit(".", 1)
            blk, j = module_at(model, blk_name), int(layer[len("denselayer"):])
            parts = {}

            def pre(_mod, inp):
                parts[0] = keep(inp[0])

            def layer_hook(i):
                def hook(_mod, _inp, out):
                    parts[i] = keep(out)
                    if i == j:
                        store[tap] = torch.cat([parts[k] for k in range(j + 1)], 1)
                return hook
            return [blk.register_forward_pre_hook(pre)] + [
                getattr(blk, f"denselayer{i}").register_forward_hook(layer_hook(i))
                for i in range(1, j + 1)]
        return [module_at(model, tap).register_forward_hook(save())]
    return [module_at(model, tap).register_forward_hook(save())]
