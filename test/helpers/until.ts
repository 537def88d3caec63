/** Polls `check` every 10 ms until it holds or `ms` passed; answers whether it held (the caller asserts on it). */
export async function until(check: () => boolean | Promise<boolean>, ms = 6000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}
