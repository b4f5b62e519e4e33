/**
 * The API key lives in sessionStorage only: it survives a reload of this tab, is never shared
 * with other tabs or written to disk by the page, and is gone when the tab closes or on sign-out.
 */
const STORAGE_KEY = 'bakehouse.apiKey';

export const storedKey = (): string | null => sessionStorage.getItem(STORAGE_KEY);

export const storeKey = (key: string): void => sessionStorage.setItem(STORAGE_KEY, key);

export const clearKey = (): void => sessionStorage.removeItem(STORAGE_KEY);
