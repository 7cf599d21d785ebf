import { Link } from "react-router";
import { Empty, PageTitle } from "../components/ui";

export function NotFoundPage() {
  return (
    <>
      <PageTitle title="Not found">Page not found</PageTitle>
      <Empty title="There is nothing at this address.">
        <Link to="/">Back to outcomes</Link>
      </Empty>
    </>
  );
}
