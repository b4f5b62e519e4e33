/** Who a request acts for: the key's user, or the user an admin key acts as. */
export interface Actor {
  userId: string;
  /** The presented key is an admin key (it may read other users' checkpoints, bread-api.md Q18). */
  isAdmin: boolean;
}
