
import pendulum
from airflow.sdk import dag

from airflow_carbon import CarbonOperator


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def carbon_bad_budget():
    CarbonOperator(task_id="train", python_callable=print, location="FR", co2_budget_g=0)


carbon_bad_budget()
