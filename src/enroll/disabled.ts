import { FleetError } from "../errors.js";
import type { JoinService } from "./api.js";

/** A manager without the CA key: nobody can be enrolled, so there is never a request to decide. */
export const NO_ENROLLMENT: JoinService = {
  enabled: false,
  listRequests: () => [],
  approve: (requestId) => Promise.reject(new FleetError("E_UNKNOWN_REQUEST", `no join request ${requestId}: this manager does not enroll hosts (it has no CA key)`)),
  deny: (requestId) => Promise.reject(new FleetError("E_UNKNOWN_REQUEST", `no join request ${requestId}: this manager does not enroll hosts (it has no CA key)`)),
};
