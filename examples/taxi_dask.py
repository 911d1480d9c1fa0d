"""Average taxi fare per month, computed by a 2-worker Dask cluster reading straight from a dshub hub.

    dshub upload ./taxi-data                 # once: the sample from scripts/gen_taxi.py
    python examples/taxi_dask.py             # uses your `dshub login` (or DSHUB_HUB_URL/DSHUB_TOKEN)
    python examples/taxi_dask.py --ref alice/taxi-data@v2

Nothing is downloaded first: the client lists ``dshub://OWNER/taxi-data/*/*.csv`` through the
hub (and pins the latest version), and each worker process reads its own files with ranged
S3 reads under short-lived read credentials that dshub fetches and renews by itself. The
workers never ran ``dshub login``: the token travels with the job (``storage_options``).
"""

from __future__ import annotations

import argparse

import dask.dataframe as dd
from distributed import Client as DaskClient
from distributed import LocalCluster

import dshub


def monthly_fares(ref: str, client: dshub.Client) -> dd.Series:
    """Lazy Dask series: mean ``fare_amount`` per pickup month over every CSV of ``ref``."""
    r = client.ref(ref)
    version = f"@v{r.version}" if r.version is not None else ""
    df = dd.read_csv(
        f"dshub://{r.owner}/{r.name}{version}/*/*.csv",
        usecols=["tpep_pickup_datetime", "fare_amount"],
        parse_dates=["tpep_pickup_datetime"],
        storage_options=client.storage_options,  # hub URL + token for the workers
        blocksize="16MiB",
    )
    month = df.tpep_pickup_datetime.dt.to_period("M").rename("month")
    return df.fare_amount.groupby(month).mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="taxi-data", help="[OWNER/]NAME[@vN] of the taxi sample (default: taxi-data)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    client = dshub.Client()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, DaskClient(cluster):
        fares = monthly_fares(args.ref, client).compute().sort_index()

    print(f"{'month':<8} {'avg fare':>9}")
    for month, fare in fares.items():
        print(f"{str(month):<8} {fare:>9.2f}")


if __name__ == "__main__":
    main()
