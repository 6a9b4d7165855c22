"""All-time reward totals (RewardStatTotal) for the dashboard, filled from the hourly rollup here and then folded
from the same deltas by orders.rollups (and rebuilt from the hourly rollup every hour, so a compaction by code
older than this migration during a rolling deploy is corrected within the hour).

Every statement is one line: tenant provisioning replays this SQL statement by statement.
"""

from django.db import migrations, models

BACKFILL = [
    "INSERT INTO orders_rewardstattotal (status, currency, engaged, rewards, amount) SELECT status, currency, engaged, "
    "sum(rewards), sum(amount) FROM orders_rewardstat GROUP BY 1, 2, 3;",
]


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0014_due_notes'),
    ]

    operations = [
        migrations.CreateModel(
            name='RewardStatTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(max_length=20)),
                ('currency', models.CharField(max_length=3)),
                ('engaged', models.SmallIntegerField(choices=[(0, 'None'), (1, 'Opened'), (2, 'Clicked')], default=0)),
                ('rewards', models.BigIntegerField(default=0)),
                ('amount', models.DecimalField(decimal_places=4, default=0, max_digits=24)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('status', 'currency', 'engaged'), name='reward_stat_total_key')],
            },
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
