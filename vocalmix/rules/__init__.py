"""Rule-based settings (Li & Lerch): one module per effect, each deciding its part of the settings.

Each rule measures the vocal as processed by the effects before it in the chain
(EQ -> compressor -> reverb -> level) and returns its settings with a report of
the measurements behind the decision.
"""
