"""A listening-test kit after Koszewski et al.: build a static test page from a ``vocalmix compare``
folder, serve it on loopback and store submissions, and analyse the ratings.

``build`` writes the page, the loudness-normalised excerpts and a private key; ``server`` serves
the page and stores answers; ``analyse`` turns the answers into statistics. The page itself
(HTML/JS/CSS) is in ``static/`` and works without internet.
"""
