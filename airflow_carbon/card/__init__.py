"""The model card: what its ``co2_eq_emissions`` says (metadata), the byte-preserving edit of its
front matter (text), and how it reaches a local folder or the Hub (publish). Imports only the core
(and huggingface_hub); no Airflow.
"""
