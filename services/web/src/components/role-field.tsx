/** A labelled "Role" select of the forms that give a role (inviting a member, creating an API key). */
export function RoleField<R extends string>({
  id,
  roles,
  value,
  onChange,
  testId,
}: {
  id: string;
  roles: readonly R[];
  value: R;
  onChange: (role: R) => void;
  testId: string;
}) {
  return (
    <div className="field">
      <label htmlFor={id}>Role</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value as R)} data-testid={testId}>
        {roles.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
    </div>
  );
}
