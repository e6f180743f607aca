"""The live dashboard over the marts (Streamlit): `app.py` renders, `queries.py` reads the marts
with the read-only role. Imports only `kafka_io.settings` of ours."""
