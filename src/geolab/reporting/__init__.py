"""Project tools that read what the pipeline wrote: the docs' tables, the metric gate, PNG plots.

No stage imports this package and no stage lists it in its ``deps`` (``tests/test_stage_deps.py``
checks both), so editing a report, ``geolab gate`` or ``geolab plots`` reruns nothing.
``docs`` fills the generated blocks of docs/*.md through one module per study (``ner``, ``seg``,
``match``, ``geoloc``).
"""
