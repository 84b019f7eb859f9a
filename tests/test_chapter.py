"""The chapter helpers: ``claim`` fails exactly when the sentence it guards is false, ``glue`` works
with and without myst-nb, and the old module name still imports."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from locality_lib import chapter


def test_claim_passes_when_true_and_names_the_sentence_when_false():
    assert chapter.claim(0.1 < 0.2, "the UNet beats Wiener") is True
    assert chapter.claim(np.float64(1.0) > 0, "numpy bools count") is True
    assert chapter.claim(torch.tensor(True), "one-element tensors count") is True
    with pytest.raises(chapter.ClaimError, match=r"the UNet beats Wiener.*unet = 0\.3.*wiener = 0\.2"):
        chapter.claim(0.3 < 0.2, "the UNet beats Wiener", unet=0.3, wiener=0.2)


def test_claim_refuses_what_is_not_one_truth_value():
    with pytest.raises(TypeError, match="one truth value"):
        chapter.claim(torch.tensor([True, False]), "ambiguous")
    with pytest.raises(TypeError, match="needs a bool"):
        chapter.claim(0.5, "a number is not a truth value")


def test_glue_returns_the_value_and_prints_it_without_myst_nb(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    assert chapter.glue("ch0_answer", 42) == 42
    assert capsys.readouterr().out.strip() == "ch0_answer = 42"


def test_sci_writes_powers_of_ten():
    from locality_lib.chapter import sci

    assert sci(0.00024) == "2.4 × 10⁻⁴" and sci(2.4e-3) == "2.4 × 10⁻³" and sci(31_415, 2) == "3.14 × 10⁴"
    assert sci(-5e-10, 0) == "-5 × 10⁻¹⁰" and sci(1.0) == "1.0 × 10⁰" and sci(0.0) == sci(-0.0) == "0"
    with pytest.raises(ValueError, match="finite"):
        sci(float("nan"))
