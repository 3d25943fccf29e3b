# The image docker-compose.yml runs: the official Airflow image with airflow-carbon installed.
FROM apache/airflow:3.3.2-python3.11

# The image's documented way to add packages: pip as the airflow user (the image's default user), with
# "apache-airflow==${AIRFLOW_VERSION}" among the targets so that pip never up- or downgrades Airflow.
# constraints.txt pins the versions `make setup` tests against; .dockerignore lets only the package
# sources into the build context (never .env, .venv or .git).
COPY --chown=airflow:root . /tmp/airflow-carbon
RUN pip install --no-cache-dir -c /tmp/airflow-carbon/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" "/tmp/airflow-carbon[cluster]" \
    && rm -rf /tmp/airflow-carbon

# Mount point of the airflow-shared volume (docker-compose.yml): a new named volume takes the owner of
# the folder it is mounted on, so creating it here as the airflow user lets the workers write to it.
RUN mkdir -p /opt/airflow/shared
