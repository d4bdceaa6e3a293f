from dateutil.relativedelta import relativedelta
from dateutil.rrule import MONTHLY, rrule


def spring_tide_months(start, count):
    """First day of `count` months from `start` (a toy 'calendar')."""
    return [d.date().isoformat() for d in rrule(MONTHLY, dtstart=start, count=count)]


def add_lunar_month(day):
    return day + relativedelta(days=29, hours=12, minutes=44)
