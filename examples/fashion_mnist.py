"""Fashion-MNIST with weft: the MNIST recipe (`mnist.py`) with a wider CNN, random mirroring
and more epochs, aiming at >= 93% test accuracy (not measured yet; see examples/README.md).

    .venv/bin/python examples/fashion_mnist.py --out runs/fashion_mnist
    .venv/bin/python examples/fashion_mnist.py --tiny --out /tmp/fmnist   # a smoke test
"""

from __future__ import annotations

from mnist import Recipe, main

FASHION_MNIST = Recipe(
    "fashion_mnist",
    (32, 128, 128),
    architecture="airbench",
    epochs=8,
    label_smoothing=0.2,
    lr=1e-2,
    target=0.93,
    mean=0.2860,
    std=0.3530,
    flip=True,  # clothes are mirror-symmetric, digits are not
)

if __name__ == "__main__":
    main(recipe=FASHION_MNIST)
