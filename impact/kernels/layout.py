"""The order of outputs in the accounting kernels' arrays; names are those of :mod:`impact.variables`."""

SECTOR_OUTPUTS = (
    "imports_by_sector", "exports_by_sector", "tariff_revenue_by_sector", "home_sales", "composite_price",
    "invested_output", "sector_output", "consumer_surplus_change", "producer_surplus_change",
    "tariff_revenue_change", "welfare_change", "unit_cost",
)
PARTNER_OUTPUTS = (
    "imports_by_partner", "exports_by_partner", "tariff_revenue_by_partner", "trade_balance",
    "pledged_purchases_by_partner",
)
CELL_OUTPUTS = ("imports", "import_price", "tariff_revenue", "exports")
QUOTA_OUTPUTS = ("quota_regime", "quota_tariff_equivalent", "quota_rent")  # per (draw, quota sector)
LANDED_OUTPUTS = ("landed_cost", "landed_tariff")  # per (draw, landed cost of the scenario)
