"""The trained networks that mixing methods run at inference, and what their inputs and outputs mean.

- :mod:`.mixing_cnn`: Li & Lerch's CNN regressor (``--method cnn``, and the ``cnn-e2e`` predictor);
- :mod:`.cnn_targets`: the parameter CNN's targets, their ranges and (de)normalisation;
- :mod:`.e2e_outputs`: the ``cnn-e2e`` predictor's outputs -> physical settings -> ``MixSettings``;
- :mod:`.waveunet`: the Wave-U-Net mixer and its exact windowed inference;
- :mod:`.checkpoints`: reading and checking the checkpoint files of all three.

Training (:mod:`vocalmix.training`) imports these; nothing here imports training.
"""
