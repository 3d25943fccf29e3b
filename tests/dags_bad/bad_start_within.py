from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_carbon import CarbonOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def carbon_bad_start_within():
    CarbonOperator(task_id="train", python_callable=print, location="FR", start_within=timedelta(seconds=30), intensity_conn_id='electricitymaps_default')


carbon_bad_start_within()
