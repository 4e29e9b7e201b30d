"""Parts several model families are built from, in keras.ops / keras.layers: framing and
FFT features (features), log spectra and band statistics (spectral), the beat clock
(beat_clock), the compiled recurrent stepping loop (stepper), harmonic oscillators
(harmonic), and more (docs/architecture.md). Models import from here;
nothing here imports a model, a run or evaluation."""
