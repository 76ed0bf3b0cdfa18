import argparse
import sys

from alimi.process import main
from alimi_delivery.app import SUPPORTED_CHANNELS, DeliveryProcess
from alimi_delivery.settings import DeliverySettings

parser = argparse.ArgumentParser(prog="python -m alimi_delivery", description=__doc__)
parser.add_argument("--channel", required=True, choices=SUPPORTED_CHANNELS)
args = parser.parse_args()

sys.exit(
    main(
        f"delivery-{args.channel}",
        DeliverySettings,
        lambda settings: DeliveryProcess(settings, args.channel),
    )
)
