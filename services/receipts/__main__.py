import sys

from alimi.process import main
from alimi_receipts.app import ReceiptsProcess
from alimi_receipts.settings import ReceiptsSettings

sys.exit(main("receipts", ReceiptsSettings, ReceiptsProcess))
