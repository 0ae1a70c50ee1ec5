/** Every metric of the manager's own is named with this. */
export const PREFIX = "mcp_fleet_";
