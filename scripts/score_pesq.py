#!/usr/bin/env python3
"""Score degraded recordings against a reference with PESQ wideband.

Usage: scripts/score_pesq.py REFERENCE.wav DEGRADED.wav [DEGRADED.wav ...]

Each file is mixed down to mono and resampled to 16 kHz. Each degraded
file is aligned to the reference by cross-correlation before scoring, so a
network delay does not count against it. Needs the PyPI packages pesq,
numpy and scipy.
"""

import sys

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as signal
from pesq import pesq

RATE = 16_000


def load(path):
    rate, samples = wavfile.read(path)
    samples = samples.astype(np.float64)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    # Integer PCM arrives in integer units; float WAVs are already in [-1, 1].
    if np.abs(samples).max() > 1.0:
        samples /= 32768.0
    if rate != RATE:
        samples = signal.resample_poly(samples, RATE, rate)
    return samples


def align(reference, degraded):
    correlation = signal.correlate(degraded, reference, mode="full", method="fft")
    lag = int(np.argmax(correlation)) - (len(reference) - 1)
    if lag >= 0:
        aligned = degraded[lag:lag + len(reference)]
    else:
        aligned = np.concatenate([np.zeros(-lag), degraded])[:len(reference)]
    padding = np.zeros(max(0, len(reference) - len(aligned)))
    return np.concatenate([aligned, padding]), lag


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reference = load(sys.argv[1])
    for path in sys.argv[2:]:
        degraded, lag = align(reference, load(path))
        score = pesq(RATE, reference, degraded, "wb")
        print(f"{path}: PESQ-WB {score:.2f} (aligned at {lag * 1000 / RATE:.1f} ms)")


if __name__ == "__main__":
    main()
