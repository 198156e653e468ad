"""Train the example CNN for a few seconds on synthetic images (which colour dominates: red, green or blue)
and save its state dict to ``model.pt``. No downloads.

    python examples/cnn-torch/make_model.py && mldeploy -f examples/cnn-torch package
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from net import SmallCNN  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # the normalisation the server applies
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images whose label is the channel that was brightened, normalised like served images."""
    labels = torch.randint(0, 3, (n,), generator=gen)
    images = torch.rand(n, 3, 224, 224, generator=gen) * 0.6
    images[torch.arange(n), labels] += 0.4
    return (images - MEAN) / STD, labels


def main(out: Path = HERE, steps: int = 25) -> Path:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = batch(32, gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = batch(64, gen)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    path = out / "model.pt"
    torch.save(model.state_dict(), path)
    print(f"loss {loss.item():.3f}, held-out accuracy {acc:.0%}")
    return path


if __name__ == "__main__":
    print(f"wrote {main()}")
