import type { Key } from '../../ports/store.ts';

/**
 * Single-table keys of webhooks and their deliveries, written once here. A webhook lives in its
 * user's partition; a delivery in its own, found by the id a queue message carries, and listed per
 * webhook through the index.
 */
export const webhookKeys = {
  webhook: (userId: string, webhookId: string): Key => ({ pk: `USER#${userId}`, sk: `WEBHOOK#${webhookId}` }),
  webhookPartition: (userId: string) => ({ pk: `USER#${userId}`, skPrefix: 'WEBHOOK#' }),

  delivery: (deliveryId: string): Key => ({ pk: `DELIVERY#${deliveryId}`, sk: 'DELIVERY' }),
  /** Newest first by creation time: `gsi1sk` is `<created_at>#<delivery id>`. */
  deliveryIndex: (webhookId: string) => ({ gsi1pk: `WEBHOOK#${webhookId}#DELIVERIES` }),

  /** One marker per delivery not yet delivered or given up, so the sweep reads only those. */
  pendingDelivery: (deliveryId: string): Key => ({ pk: 'DELIVERIES#PENDING', sk: deliveryId }),
  pendingPartition: { pk: 'DELIVERIES#PENDING' },
};
