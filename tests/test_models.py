from __future__ import annotations

import pytest
import torch

from errorset.errors import ConfigError, UnknownNameError
from errorset.models import MODELS, Classifier, create_model, load_model, save_model

# One concrete name per registry entry (patterns get small instances).
CONCRETE = {
    "linear": "linear",
    "mlp": "mlp",
    "resnet<6n+2> (e.g. resnet8, resnet20)": "resnet8",
    "cifarnet<width> (e.g. cifarnet32)": "cifarnet8",
    "wrn<depth>_<width> (e.g. wrn28_10)": "wrn10_1",
    "timm:<name> (any timm model)": "timm:resnet18",
}


def test_every_registered_model_has_a_test_instance():
    assert set(MODELS.names()) == set(CONCRETE)


@pytest.mark.parametrize("name", sorted(CONCRETE.values()))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)], ids=["digits", "cifar"])
def test_models_adapt_to_input_shape_and_classes(name, shape):
    torch.manual_seed(0)
    if name.startswith("cifarnet") and shape[1] < 16:  # three halvings after a 2x2 stem leave nothing of 8x8
        with pytest.raises(ConfigError, match=r"model\.name: cifarnet needs images of at least 16x16 pixels, got 8x8"):
            create_model(name, input_shape=shape, num_classes=7)
        return
    model = create_model(name, input_shape=shape, num_classes=7)
    assert isinstance(model, Classifier)
    out = model.eval()(torch.rand(3, *shape))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["mlp", "resnet8"])
def test_normalisation_happens_inside_the_wrapper(name):
    torch.manual_seed(0)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    model = create_model(name, input_shape=(3, 32, 32), num_classes=10, mean=mean, std=std).eval()
    x = torch.rand(4, 3, 32, 32)
    manual = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), model.net(manual), rtol=1e-4, atol=1e-5)


def test_wrn28_10_is_the_papers_size():
    model = create_model("wrn28_10", input_shape=(3, 32, 32), num_classes=10)
    n = sum(p.numel() for p in model.parameters())
    assert 36.4e6 < n < 36.6e6  # WRN-28-10 has 36.5M parameters


def test_resnet_depths():
    n8 = sum(p.numel() for p in create_model("resnet8", input_shape=(3, 32, 32), num_classes=10).parameters())
    n20 = sum(p.numel() for p in create_model("resnet20", input_shape=(3, 32, 32), num_classes=10).parameters())
    assert n8 < n20
    assert 0.26e6 < n20 < 0.28e6  # He et al.'s ResNet-20: 0.27M parameters


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("resnet9", ConfigError, r"model\.name: a CIFAR ResNet needs depth 6n\+2"),
        ("wrn27_10", ConfigError, r"model\.name: a WRN needs depth 6n\+4"),
        ("timm:no_such_model_xyz", UnknownNameError, r"model\.name: timm has no model 'no_such_model_xyz'"),
        ("vgg16", UnknownNameError, r"model\.name: unknown model 'vgg16'; valid models: linear, mlp"),
    ],
)
def test_bad_model_names(name, error, message):
    with pytest.raises(error, match=message):
        create_model(name, input_shape=(3, 32, 32), num_classes=10)


@pytest.mark.parametrize("name", ["mlp", "resnet8"])
def test_save_and_load_roundtrip(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name, input_shape=(3, 32, 32), num_classes=10, mean=[0.5] * 3, std=[0.25] * 3).eval()
    path = save_model(model, tmp_path / "m.pt", note="x")
    loaded = load_model(path)
    x = torch.rand(5, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.spec == model.spec
    assert not loaded.training


class Unpicklable:
    """An object torch's weights-only loader refuses (its class would have to be imported and run)."""


def test_load_model_rejects_other_files(tmp_path):
    from errorset.errors import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"^eval\.checkpoint: .*bad\.pt is not an errorset model file") as e:
        load_model(bad, parameter="eval.checkpoint")
    assert "weights_only=False" not in str(e.value) and "\n" not in str(e.value)
    # a pickle that needs code to load (torch would advise weights_only=False, which would run it)
    torch.save({"format": "errorset.model/1", "spec": Unpicklable()}, tmp_path / "code.pt")
    refused = r"^checkpoint: .*code\.pt is not an errorset model file .*not loaded$"
    with pytest.raises(CheckpointError, match=refused) as e:
        load_model(tmp_path / "code.pt")
    assert "likely succeed" not in str(e.value) and "weights_only=False" not in str(e.value)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an errorset model file"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no model file"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", sorted(CONCRETE.values()))
def test_channels_last_metadata_matches_the_architecture(name):
    """Convolutional nets (any Conv2d) run channels-last, the others not: read from the registry, not the name."""
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    torch.manual_seed(0)
    model = create_model(name, input_shape=(3, 32, 32), num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert MODELS.metadata(name)["channels_last"] is bool(convs)
    assert model.channels_last is bool(convs)
    # the conv weights are stored channels-last exactly when the metadata says so
    for conv in convs:
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        if conv.weight[0, 0].numel() > 1:  # a 1x1 kernel's layout is both
            assert not conv.weight.is_contiguous()
