"""The core: measuring (NVML, GPU, host, sampler, devices, meter, units) and accounting (grid
intensity, emissions, the record, aggregation, exports, reports).

It imports nothing from Airflow, the model-card code or the UI, so it runs anywhere, a GPU box without
Airflow included (tests/test_layers.py checks the rule).
"""
