import { handle } from 'hono/aws-lambda';
import { compose } from '#functions/composition.ts';
import { createApp } from '#http/app.ts';

const { services } = compose({
  store: 'dynamodb',
  tableName: process.env.TABLE_NAME ?? '',
  baseModels: process.env.BAKEHOUSE_BASE_MODELS,
});

export const handler = handle(createApp(services));
