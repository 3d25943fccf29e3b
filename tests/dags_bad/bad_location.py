import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def carbon_bad_location():
    @task.carbon(location="Frnace")
    def train() -> None: ...

    train()


carbon_bad_location()
